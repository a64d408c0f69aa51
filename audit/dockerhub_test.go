package audit_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"k8s.io/client-go/tools/record"

	"github.com/pullsafe/pullsafe/audit"
	"github.com/pullsafe/pullsafe/policy"
	"github.com/pullsafe/pullsafe/registry"
	"github.com/pullsafe/pullsafe/registry/registrytest"
)

// hubAt sends Docker Hub's requests to a test registry over plain HTTP,
// below the authentication layer, and every other request where it goes.
type hubAt string

func (h hubAt) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Host == "index.docker.io" || r.URL.Host == "auth.docker.io" {
		r = r.Clone(r.Context())
		r.URL.Scheme, r.URL.Host = "http", string(h)
	}
	return http.DefaultTransport.RoundTrip(r)
}

// TestAnonymousDockerHubIsANoteNotAFailure: a healthy nginx:1.27
// Deployment pulled anonymously from Docker Hub runs; the shared rate limit
// is a risk, not a pull that would fail. The audit notes it, reports no
// failing workload (pullsafe audit exits 0) and records no Warning Event;
// a workload whose pull would fail still gets one.
func TestAnonymousDockerHubIsANoteNotAFailure(t *testing.T) {
	hub := registrytest.New(t)
	hub.Image("library/nginx", "1.27", "linux", "amd64")
	reg := registrytest.New(t)
	res, err := registry.NewResolver(registry.WithTransport(hubAt(hub.Host)), registry.WithAllowLoopback(true))
	if err != nil {
		t.Fatal(err)
	}
	checker := policy.NewChecker(policy.DefaultConfig(), res)
	objs := append(deployment("shop", "web", "nginx:1.27", 2), deployment("shop", "gone", reg.Host+"/team/app:v2", 1)...)
	rep, err := newAuditor(t, objs, checker, newFakeClock().option()).Pass(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 1 || rep.Results[0].Owner.Name != "gone" {
		t.Fatalf("results %+v, want only deployment/gone (team/app:v2 does not exist); notes %q", rep.Results, rep.Notes)
	}
	if msg := rep.Results[0].Message; !strings.HasPrefix(msg, "pullsafe: deployment/gone would fail to pull 1 image(s):") || strings.Contains(msg, "[dockerhub-anonymous]") {
		t.Errorf("gone's message: %q", msg)
	}
	noted := false
	for _, n := range rep.Notes {
		noted = noted || strings.HasPrefix(n, "shop deployment/web: [dockerhub-anonymous]")
	}
	if !noted {
		t.Errorf("no note on web's anonymous Docker Hub pulls: %q", rep.Notes)
	}
	rec := record.NewFakeRecorder(10)
	(&audit.Runner{Recorder: rec}).Publish(rep)
	close(rec.Events)
	var events []string
	for ev := range rec.Events {
		events = append(events, ev)
	}
	if len(events) != 1 || !strings.Contains(events[0], "deployment/gone would fail to pull") {
		t.Errorf("events %q, want one, on gone", events)
	}
}
