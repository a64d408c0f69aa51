package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/pullsafe/pullsafe/registry/registrytest"
)

// A reload that changes outageWindow hands the windows to a resolver with
// the new setting; how long a repository's failure counts towards the
// host's threshold (one outage window) must be the new one too. With the
// old 1s, failures 2s apart never added up under a 10m setting.
func TestAdoptedWindowsCountWithTheNewOutageWindow(t *testing.T) {
	tr := registrytest.New(t)
	tr.Image("team-b/api", "v1", "linux", "amd64")
	clock := newTestClock()
	prev := newTestResolver(t, WithClock(clock.Now), WithOutageWindow(time.Second))
	r := newTestResolver(t, WithClock(clock.Now), WithOutageWindow(10*time.Minute))
	r.AdoptWindows(prev)
	ctx := context.Background()
	if _, err := r.Resolve(ctx, tr.Host+"/team-b/api:v1", nil); err != nil {
		t.Fatal(err)
	}
	tr.SetFault(func(w http.ResponseWriter, _ *http.Request) bool {
		http.Error(w, "no healthy upstream", http.StatusServiceUnavailable)
		return true
	})
	for i := range hostFailThreshold {
		clock.Add(2 * time.Second)
		if _, err := r.Resolve(ctx, fmt.Sprintf("%s/team%d/app:v1", tr.Host, i), nil); ReasonOf(err) != Unreachable {
			t.Fatalf("repository %d: %v", i, err)
		}
	}
	if _, err := r.Resolve(ctx, tr.Host+"/team-b/api:v2", nil); !errors.Is(err, errRemembered) {
		t.Errorf("after %d repositories failed 2s apart under a 10m outage window: %v, want the host's window", hostFailThreshold, err)
	}
}
