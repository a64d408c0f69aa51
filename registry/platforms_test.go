package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pullsafe/pullsafe/registry/registrytest"
)

const ociIndex = "application/vnd.oci.image.index.v1+json"

// hugeIndex is an index of n entries, each a distinct platform
// (linux/a<seed>-<i>), in the fewest bytes: the shape of the 4 MiB,
// 182,000-entry index a hostile registry served.
func hugeIndex(seed, n int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"schemaVersion":2,"mediaType":"` + ociIndex + `","manifests":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"platform":{"os":"linux","architecture":"a%d-%d"}}`, seed, i)
	}
	b.WriteString("]}")
	return b.Bytes()
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// TestHugeIndexesKeepLittle: the platforms of N distinct huge indexes keep
// a bounded heap (before: ~21 MiB per 182,000-entry index, never freed),
// and the rule hears "cannot verify", not a platform list it could deny on.
func TestHugeIndexesKeepLittle(t *testing.T) {
	tr := registrytest.New(t)
	const n, entries = 4, 30000
	var images []string
	for i := range n {
		tag := fmt.Sprintf("v%d", i)
		tr.RawManifest("huge/app", tag, ociIndex, hugeIndex(i, entries))
		images = append(images, tr.Host+"/huge/app:"+tag)
	}
	r := newTestResolver(t, WithLookupTimeout(time.Minute)) // the race detector makes decoding slow
	ctx := context.Background()
	before := heapInUse()
	for _, image := range images {
		img, err := r.Resolve(ctx, image, nil)
		if err != nil {
			t.Fatal(err)
		}
		p, err := r.Platforms(ctx, img)
		if e := mustFail(t, err); e.Reason != Unreachable || e.Flavour != FlavourTooManyPlatforms {
			t.Errorf("error = %+v", e)
		}
		if len(p) != maxPlatforms {
			t.Errorf("%d platforms kept, want %d", len(p), maxPlatforms)
		}
	}
	after := heapInUse()
	grown := int64(after) - int64(before)
	t.Logf("heap grew by %d KiB for %d indexes of %d entries", grown>>10, n, entries)
	if grown > 6<<20 { // before: ~4 MiB per index
		t.Errorf("heap grew by %d MiB after %d huge indexes, want under 6 MiB", grown>>20, n)
	}
	if got := r.platforms.len(); got != n {
		t.Errorf("%d cached platform lists, want %d", got, n)
	}
	// Cached: the same answer without asking the registry again.
	tr.Reset()
	img, _ := r.Resolve(ctx, images[0], nil)
	if _, err := r.Platforms(ctx, img); ReasonOf(err) != Unreachable || tr.Count("GET", "/manifests/") != 0 {
		t.Errorf("cached answer: err %v, %d GETs", err, tr.Count("GET", "/manifests/"))
	}
}

func TestPlatformsAreDistinctAndCapped(t *testing.T) {
	tr := registrytest.New(t)
	long := strings.Repeat("x", 10000)
	tr.RawManifest("odd/app", "v1", ociIndex, []byte(`{"schemaVersion":2,"manifests":[
		{"platform":{"os":"linux","architecture":"amd64"}},
		{"platform":{"os":"linux","architecture":"amd64","os.features":["a"]}},
		{"platform":{"os":"unknown","architecture":"unknown"}},
		{"size":1},
		{"platform":{"os":"windows","architecture":"amd64","os.version":"10.0.20348.2227"}},
		{"platform":{"os":"windows","architecture":"amd64","os.version":"10.0.17763.5329"}},
		{"platform":{"os":"linux","architecture":"`+long+`"}}]}`))
	r := newTestResolver(t)
	ctx := context.Background()
	img, err := r.Resolve(ctx, tr.Host+"/odd/app:v1", nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := r.Platforms(ctx, img)
	if err != nil {
		t.Fatal(err)
	}
	want := []v1.Platform{{OS: "linux", Architecture: "amd64"}, {},
		{OS: "windows", Architecture: "amd64", OSVersion: "10.0.20348.2227"},
		{OS: "windows", Architecture: "amd64", OSVersion: "10.0.17763.5329"},
		{OS: "linux", Architecture: long[:maxPlatformField]}}
	if diff := cmp.Diff(want, p); diff != "" {
		t.Errorf("platforms (-want +got):\n%s", diff)
	}
}

func TestPlatformCacheBounds(t *testing.T) {
	now := time.Unix(0, 0)
	clock := func() time.Time { return now }
	set := func(arch string) platformSet {
		return platformSet{platforms: []v1.Platform{{OS: "linux", Architecture: arch}}}
	}
	t.Run("bytes", func(t *testing.T) {
		c := newPlatformCache(1000, 2000, time.Hour, clock)
		for i := range 100 {
			c.add(fmt.Sprintf("sha256:%064d", i), set("amd64"))
		}
		if c.bytes > 2000 || c.len() == 0 || c.len() >= 100 {
			t.Errorf("%d entries, %d bytes; want some, within 2000 bytes", c.len(), c.bytes)
		}
		if _, ok := c.get(fmt.Sprintf("sha256:%064d", 99)); !ok {
			t.Errorf("the newest entry was evicted")
		}
	})
	t.Run("entries", func(t *testing.T) {
		c := newPlatformCache(3, 1<<20, time.Hour, clock)
		for i := range 10 {
			c.add(fmt.Sprint(i), set("amd64"))
		}
		if c.len() != 3 {
			t.Errorf("%d entries, want 3", c.len())
		}
	})
	t.Run("ttl", func(t *testing.T) {
		c := newPlatformCache(10, 1<<20, time.Hour, clock)
		c.add("a", set("arm64"))
		now = now.Add(59 * time.Minute)
		if _, ok := c.get("a"); !ok {
			t.Errorf("expired early")
		}
		now = now.Add(2 * time.Minute)
		if _, ok := c.get("a"); ok || c.len() != 0 {
			t.Errorf("still cached after its TTL")
		}
	})
}

// referencePlatforms is what the platform list was before streaming:
// json.Unmarshal of the whole manifest, then distinct and capped.
func referencePlatforms(data []byte) (manifestPlatforms, error) {
	var m struct {
		Manifests *[]struct {
			Platform *v1.Platform    `json:"platform"`
			Digest   json.RawMessage `json:"digest"`
		} `json:"manifests"`
		Config *v1.Descriptor `json:"config"`
		Layers []struct {
			MediaType string   `json:"mediaType"`
			Digest    string   `json:"digest"`
			URLs      []string `json:"urls"`
		} `json:"layers"`
	}
	var out manifestPlatforms
	if err := json.Unmarshal(data, &m); err != nil {
		return out, err
	}
	if m.Manifests != nil {
		out.set.index = true
		for _, d := range *m.Manifests {
			switch {
			case d.Platform == nil:
				out.set.addEntry(v1.Platform{}, digestOf(d.Digest))
			case d.Platform.OS != "unknown":
				out.set.addEntry(*d.Platform, digestOf(d.Digest))
			}
		}
	}
	out.config = m.Config
	if m.Config != nil && !out.set.index {
		var l pathLayers
		for _, d := range m.Layers {
			l.add(d.MediaType, d.Digest, d.URLs)
		}
		out.set.blobs = &pathBlobs{config: m.Config.Digest.String(), imageConfig: imageConfig(m.Config.MediaType), pathLayers: l}
	}
	return out, nil
}

// FuzzDecodeManifest: the streaming decoder reads a manifest exactly as
// encoding/json does (which is what containerd uses), keeping the same
// distinct platforms; where encoding/json fails, it fails too.
func FuzzDecodeManifest(f *testing.F) {
	f.Add([]byte(`{"manifests":[{"platform":{"os":"linux","architecture":"amd64"}},{"platform":null},{}]}`))
	f.Add([]byte(`{"MANIFESTS":[{"Platform":{"OS":"linux","architecture":"arm64","variant":"v8"}}],"manifests":null}`))
	f.Add([]byte(`{"config":{"digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":3}}`))
	f.Add([]byte(`{"manifests":[]} {}`))
	f.Add(hugeIndex(1, 70))
	f.Add([]byte(`{"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":3},` +
		`"layers":[{"digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111"},{"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip","digest":"x"},{"urls":["https://x"]},{"digest":""}],"LAYERS":null}`))
	f.Add([]byte(`{"manifests":[{"digest":"sha256:2","platform":{"os":"linux","architecture":"amd64"}},{"digest":5,"platform":{"os":"linux","architecture":"amd64"}}],"layers":[{"digest":3}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, gotErr := decodeManifest(bytes.NewReader(data))
		want, wantErr := referencePlatforms(data)
		if wantErr != nil {
			if gotErr == nil {
				t.Fatalf("encoding/json refuses (%v), the stream decoder accepts %q", wantErr, data)
			}
			return
		}
		if gotErr != nil {
			t.Fatalf("encoding/json accepts, the stream decoder refuses (%v): %q", gotErr, data)
		}
		if diff := cmp.Diff(want.set.platforms, got.set.platforms); diff != "" || want.set.truncated != got.set.truncated {
			t.Fatalf("platforms differ (-json +stream), truncated %v/%v:\n%s", want.set.truncated, got.set.truncated, diff)
		}
		if (want.config == nil) != (got.config == nil) {
			t.Fatalf("config: json %v, stream %v", want.config, got.config)
		}
		// What the pull path walks next: the same children and blobs.
		if diff := cmp.Diff(want.set.children, got.set.children); diff != "" || want.set.index != got.set.index {
			t.Fatalf("children differ (-json +stream), index %v/%v:\n%s", want.set.index, got.set.index, diff)
		}
		if diff := cmp.Diff(want.set.blobs, got.set.blobs, cmp.AllowUnexported(pathBlobs{}, pathLayers{})); diff != "" {
			t.Fatalf("blobs differ (-json +stream):\n%s", diff)
		}
	})
}

func BenchmarkDecodeHugeIndex(b *testing.B) {
	data := hugeIndex(0, 182000)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeManifest(bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeHugeIndexUnmarshal is the decoding before streaming, for
// comparison.
func BenchmarkDecodeHugeIndexUnmarshal(b *testing.B) {
	data := hugeIndex(0, 182000)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := referencePlatforms(data); err != nil {
			b.Fatal(err)
		}
	}
}
