package registry

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/pullsafe/pullsafe/registry/registrytest"
)

// BenchmarkProbeMemory runs issue 20's memory probes against one in-process
// Resolver each and reports the peak HeapInuse (sampled every 5 ms), Sys
// and the process's peak RSS (VmHWM, reset before each probe where Linux
// allows) while it runs. The goal is an RSS under 128 MiB through
// each. Run it once per probe:
//
//	go test -run XXX -bench ProbeMemory -benchtime 1x ./registry/
func BenchmarkProbeMemory(b *testing.B) {
	probes := []struct {
		name    string
		lookups int
		auth    string
		fault   func(w http.ResponseWriter, r *http.Request) bool
	}{
		// 1,000 missing images whose 404s carry 64 KiB bodies.
		{name: "not-found-64KiB-bodies", lookups: 1000, auth: "basic", fault: hugeNotFound},
		// 128 lookups answered with a 1 MiB WWW-Authenticate, the ping
		// included: past the 64 KiB header cap, each is refused.
		{name: "1MiB-challenges", lookups: 128, fault: func(w http.ResponseWriter, r *http.Request) bool {
			w.Header().Set("WWW-Authenticate", `Bearer realm="https://auth.example/token",service="`+strings.Repeat("s", 1<<20)+`"`)
			w.WriteHeader(http.StatusUnauthorized)
			return true
		}},
		// Missing tags in a repository listing 1,000 tags of 1 KB each.
		{name: "suggestions-1000-tags-of-1KB", lookups: 128, fault: longTagList()},
	}
	for _, p := range probes {
		b.Run(p.name, func(b *testing.B) {
			tr := registrytest.New(b)
			tr.SetAuth(p.auth)
			tr.SetFault(p.fault)
			var kc *Keychain
			if p.auth != "" {
				kc = NewKeychain([]*corev1.Secret{goodSecret(tr)})
			}
			resetPeakRSS()
			var peak peakHeap
			stop := peak.sample(5 * time.Millisecond)
			for b.Loop() {
				r := newTestResolver(b, WithCache(10000, time.Hour, time.Hour), WithLookupTimeout(10*time.Second))
				lookupAll(b, r, kc, tr.Host, p.lookups)
				runtime.KeepAlive(r)
			}
			heapInuse, sys := stop()
			b.ReportMetric(float64(heapInuse)/(1<<20), "peak-HeapInuse-MiB")
			b.ReportMetric(float64(sys)/(1<<20), "Sys-MiB")
			if hwm := statusKiB("VmHWM"); hwm > 0 {
				b.ReportMetric(float64(hwm)/1024, "peak-RSS-MiB")
			}
		})
	}
}

// lookupAll asks for n distinct missing images, 16 at a time (a review's
// worth): what the registry answers is the probe's, any answer will do.
func lookupAll(b *testing.B, r *Resolver, kc *Keychain, host string, n int) {
	var wg sync.WaitGroup
	next := make(chan int)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				_, err := r.Resolve(context.Background(), fmt.Sprintf("%s/team/app%d:v1", host, i), kc)
				if err == nil {
					b.Errorf("lookup %d resolved; the probe's registry has no images", i)
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

// longTagList answers every manifest with a 404 and every tag list with
// 1,000 tags of 1,000 characters (just under the 1 MiB page pullsafe reads).
func longTagList() func(w http.ResponseWriter, r *http.Request) bool {
	tags := make([]string, 1000)
	for i := range tags {
		tags[i] = fmt.Sprintf("%q", fmt.Sprintf("v%04d-", i)+strings.Repeat("t", 994))
	}
	list := `{"name":"team/app","tags":[` + strings.Join(tags, ",") + `]}`
	return func(w http.ResponseWriter, r *http.Request) bool {
		switch {
		case strings.Contains(r.URL.Path, "/tags/list"):
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, list)
		case strings.Contains(r.URL.Path, "/manifests/"):
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			if r.Method != http.MethodHead {
				fmt.Fprint(w, `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}`)
			}
		default:
			return false
		}
		return true
	}
}

// peakHeap is the largest HeapInuse seen by a sampler.
type peakHeap struct {
	mu  sync.Mutex
	max uint64
}

// sample reads the heap every d until the returned stop, which gives the
// peak HeapInuse and the last Sys.
func (p *peakHeap) sample(d time.Duration) (stop func() (heapInuse, sys uint64)) {
	done, finished := make(chan struct{}), make(chan struct{})
	var last runtime.MemStats
	read := func() {
		runtime.ReadMemStats(&last)
		p.mu.Lock()
		p.max = max(p.max, last.HeapInuse)
		p.mu.Unlock()
	}
	go func() {
		defer close(finished)
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-done:
				read()
				return
			case <-t.C:
				read()
			}
		}
	}()
	return func() (uint64, uint64) {
		close(done)
		<-finished
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.max, last.Sys
	}
}

// resetPeakRSS restarts the kernel's VmHWM count for this process (Linux:
// writing 5 to clear_refs); elsewhere VmHWM is the peak since start.
func resetPeakRSS() {
	runtime.GC()
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// statusKiB reads a field of /proc/self/status in KiB; 0 if there is none.
func statusKiB(field string) int {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			if fs := strings.Fields(rest); len(fs) > 0 {
				n, _ := strconv.Atoi(fs[0])
				return n
			}
		}
	}
	return 0
}
