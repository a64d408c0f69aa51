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
// platforms of 5 layers, both pulled by the nodes) as policy makes it, from
// a cold resolver, against a registry 2ms away: path=off is Resolve and
// Platforms (registries.verifyBlobs: false), path=on adds PullPath. The
// time is mostly round trips: rtt/op counts them as time/2ms.
func BenchmarkFirstLookup(b *testing.B) {
	const latency = 2 * time.Millisecond
	tr := registrytest.New(b)
	platforms := []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}}
	const tags = 64
	for i := range tags {
		tr.PushIndex("team/app", fmt.Sprintf("v%d", i),
			[]v1.Image{registrytest.LayeredImage(b, "linux", "amd64", 5), registrytest.LayeredImage(b, "linux", "arm64", 5)}, platforms)
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
	for _, path := range []bool{false, true} {
		b.Run(fmt.Sprintf("path=%v", map[bool]string{false: "off", true: "on"}[path]), func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			tr.Reset()
			peak.Store(0)
			n := 0
			start := time.Now()
			for b.Loop() {
				r := newTestResolver(b) // cold: no connection, token or answer cached
				img, err := r.Resolve(ctx, fmt.Sprintf("%s/team/app:v%d", tr.Host, n%tags), nil)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := r.Platforms(ctx, img); err != nil {
					b.Fatal(err)
				}
				if path {
					if err := r.PullPath(ctx, img, platforms); err != nil {
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
