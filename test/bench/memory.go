package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/pullsafe/pullsafe/registry"
	"github.com/pullsafe/pullsafe/registry/registrytest"
)

// cacheMemory fills a Resolver's cache with n tag answers from an in-process
// registry and reports the heap and RSS growth of this process.
func cacheMemory(ctx context.Context, sizes []int) ([]row, error) {
	var rows []row
	for _, n := range sizes {
		heap, rss, took, err := fillCache(ctx, n)
		if err != nil {
			return nil, err
		}
		rows = append(rows, row{fmt.Sprintf("memory for %dk cached tag answers", n/1000),
			fmt.Sprintf("heap +%.1f MiB (%d B/entry), RSS +%.1f MiB; filled in %s", float64(heap)/(1<<20), heap/int64(n), float64(rss)/1024, dur(took)), ""})
	}
	return rows, nil
}

func fillCache(ctx context.Context, n int) (heapDelta int64, rssDeltaKiB int, took time.Duration, err error) {
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	img, err := registrytest.NewPlatformImage("linux", "amd64")
	if err != nil {
		return 0, 0, 0, err
	}
	ref, _ := name.NewTag(host + "/mem/app:t0")
	if err := remote.Write(ref, img); err != nil {
		return 0, 0, 0, err
	}
	manifest, _ := img.RawManifest()
	mt, _ := img.MediaType()
	// Tag the same manifest n times: the registry's state is built before
	// the baseline, so only the resolver's growth is measured.
	if err := parallel(n, 16, func(i int) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPut, fmt.Sprintf("%s/v2/mem/app/manifests/t%d", srv.URL, i), bytes.NewReader(manifest))
		req.Header.Set("Content-Type", string(mt))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	}); err != nil {
		return 0, 0, 0, err
	}
	r, err := registry.NewResolver(registry.WithCache(n+100, time.Hour, time.Minute), registry.WithAllowLoopback(true))
	if err != nil {
		return 0, 0, 0, err
	}
	heap0, rss0 := heapNow(), rssKiB(os.Getpid(), "VmRSS")
	start := time.Now()
	if err := parallel(n, 16, func(i int) error {
		_, err := r.Resolve(ctx, fmt.Sprintf("%s/mem/app:t%d", host, i), nil)
		return err
	}); err != nil {
		return 0, 0, 0, err
	}
	took = time.Since(start)
	heap1, rss1 := heapNow(), rssKiB(os.Getpid(), "VmRSS")
	runtime.KeepAlive(r)
	return int64(heap1) - int64(heap0), rss1 - rss0, took, nil
}

func heapNow() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// parallel runs f(0..n-1) on workers goroutines; the first error wins.
func parallel(n, workers int, f func(i int) error) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		next  = make(chan int)
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := f(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}
