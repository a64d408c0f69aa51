package registry

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pullsafe/pullsafe/registry/registrytest"
)

// BenchmarkFirstLookup is a first lookup of a new multi-arch image (2
// platforms of 5 layers, both pulled by the nodes) or a single-platform one
// (5 layers) as policy makes it, from
// a cold resolver, against a registry 2ms away: path=off is Resolve and
// Platforms (registries.verifyBlobs: false), path=on adds PullPath. The
// time is mostly round trips: rtt/op counts them as time/2ms.
func BenchmarkFirstLookup(b *testing.B) {
	const latency = 2 * time.Millisecond
	tr := registrytest.New(b)
	platforms := []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}}
	const tags = 64
	for i := range tags {
		tr.PushIndex("team/multi", fmt.Sprintf("v%d", i),
			[]v1.Image{registrytest.LayeredImage(b, "linux", "amd64", 5), registrytest.LayeredImage(b, "linux", "arm64", 5)}, platforms)
		tr.Push("team/single", fmt.Sprintf("v%d", i), registrytest.LayeredImage(b, "linux", "amd64", 5))
	}
	var inFlight, peak atomic.Int64
	tr.SetFault(func(http.ResponseWriter, *http.Request) bool {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for m := peak.Load(); n > m && !peak.CompareAndSwap(m, n); m = peak.Load() {
		}
		time.Sleep(latency)
		return false
	})
	for _, bc := range []struct {
		image string
		path  bool
	}{{"multi", false}, {"multi", true}, {"single", false}, {"single", true}} {
		path := bc.path
		b.Run(fmt.Sprintf("image=%s/path=%v", bc.image, map[bool]string{false: "off", true: "on"}[path]), func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			tr.Reset()
			peak.Store(0)
			n := 0
			start := time.Now()
			for b.Loop() {
				r := newTestResolver(b) // cold: no connection, token or answer cached
				img, err := r.Resolve(ctx, fmt.Sprintf("%s/team/%s:v%d", tr.Host, bc.image, n%tags), nil)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := r.Platforms(ctx, img); err != nil {
					b.Fatal(err)
				}
				if path {
					if err := r.PullPath(ctx, img, platforms[:map[string]int{"multi": 2, "single": 1}[bc.image]]); err != nil {
						b.Fatal(err)
					}
				}
				r.CloseIdleConnections()
				n++
			}
			b.ReportMetric(float64(tr.Count("", ""))/float64(n), "requests/op")
			b.ReportMetric(float64(time.Since(start))/float64(n)/float64(latency), "rtt/op")
			b.ReportMetric(float64(peak.Load()), "peak-in-flight")
		})
	}
}
