package webhook

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
)

// A reload that reshapes the resolver drops the old one; its idle
// keep-alive connections (two goroutines and a socket each) must go with
// it rather than linger until the transport's idle timeout (90s): a
// config changed every few seconds would otherwise pile them up.
func TestReloadRebuildsLeakNoConnections(t *testing.T) {
	rb := newReloadBed(t)
	ctx := context.Background()
	req := request(t, admissionv1.Create, pod("team-a", rb.open.Host+"/team/api:v1.4.1"), nil, "")
	if resp := rb.validate.Handle(ctx, req); !resp.Allowed {
		t.Fatalf("denied: %v", resp.Result)
	}
	time.Sleep(100 * time.Millisecond)
	before := connGoroutines()
	const reloads = 100
	for i := range reloads {
		cfg := fmt.Sprintf("apiVersion: pullsafe.io/v1alpha1\nkind: Config\nmode: warn\ncache: {size: %d}\nregistries:\n  mirrors: {docker.io: [%q]}\n  allowLoopback: true\n", 1000+i, rb.open.Host)
		rb.writeRaw(t, cfg)
		rb.reloader.Reload(ctx)
		if resp := rb.validate.Handle(ctx, req); !resp.Allowed {
			t.Fatalf("reload %d: denied: %v", i, resp.Result)
		}
	}
	rb.wantReloads(t, "success", reloads)
	var after int
	for range 50 { // connections closing take a moment
		if after = connGoroutines(); after-before < 10 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("%d reloads that reshape the resolver left %d connection goroutines behind (%d -> %d)", reloads, after-before, before, after)
}

// connGoroutines counts the goroutines serving HTTP client connections.
func connGoroutines() int {
	buf := make([]byte, 1<<22)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Count(string(buf), "net/http.(*persistConn).readLoop")
}
