package policy

import (
	"context"
	"fmt"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pullsafe/pullsafe/registry"
)

// Default bounds on registry lookups in flight. A Pod may list thousands of
// containers; without a bound one review against a slow registry opened a
// connection per container (8,000 containers: ~9,900 connections, 770 MB).
const (
	DefaultLookupsPerReview = 16
	DefaultLookupsTotal     = 256
)

// CheckerOption configures a Checker.
type CheckerOption func(*Checker)

// WithLookupLimits bounds the registry lookups (Resolve and Platforms calls)
// in flight: perReview for one Check, total across every Check of this
// Checker. Defaults: DefaultLookupsPerReview, DefaultLookupsTotal. Values
// below 1 keep the default.
func WithLookupLimits(perReview, total int) CheckerOption {
	return func(c *Checker) {
		if perReview > 0 {
			c.perReview = perReview
		}
		if total > 0 {
			c.lookups = NewLookups(total)
		}
	}
}

// WithLookups makes the Checker take its slots from l: the Checker of a
// reloaded config shares its predecessor's (Lookups), so reviews on
// either are counted together. Default: NewLookups(DefaultLookupsTotal).
func WithLookups(l *Lookups) CheckerOption {
	return func(c *Checker) {
		if l != nil {
			c.lookups = l
		}
	}
}

// Lookups are the slots the Checker's lookups take.
func (c *Checker) Lookups() *Lookups { return c.lookups }

// LookupsInFlight is how many of the Checker's lookup slots are taken now:
// the audit of running workloads starts a lookup only when admission leaves
// them free.
func (c *Checker) LookupsInFlight() int { return c.lookups.InFlight() }

// Resolver is the resolver the Checker looks images up with: the audit
// shares it, and so its cached answers and rate-limit windows.
func (c *Checker) Resolver() ImageResolver { return c.res }

// reviewResolver is the resolver one Check sees: identical lookups in one
// object (same image, same keychain; same resolved image for platforms)
// are made once and shared, and each lookup holds one of the Checker's
// slots (Lookups), charged to the review's namespace, while it runs.
// Waiting for a slot obeys the review's deadline: a container not reached
// in time gets "cannot verify", never a denial.
type reviewResolver struct {
	next    ImageResolver
	lookups *Lookups
	ns      string

	mu        sync.Mutex
	images    map[imageKey]*lookup
	platforms map[*registry.Image]*lookup
}

type imageKey struct {
	image string
	kc    *registry.Keychain
}

// lookup is one shared answer; done is closed once it is set.
type lookup struct {
	done      chan struct{}
	img       *registry.Image
	platforms []v1.Platform
	err       error
}

func newReviewResolver(next ImageResolver, lookups *Lookups, ns string) *reviewResolver {
	return &reviewResolver{next: next, lookups: lookups, ns: ns,
		images: map[imageKey]*lookup{}, platforms: map[*registry.Image]*lookup{}}
}

func (r *reviewResolver) Resolve(ctx context.Context, image string, kc *registry.Keychain) (*registry.Image, error) {
	// One registry is one share of the slots however its images spell
	// it: a flood cannot take three shares by writing its host three ways.
	host := registry.HostOf(image)
	l := shared(r, r.images, imageKey{image, kc}, func(l *lookup) {
		val, err, answered := r.lookups.do(ctx, r.ns, host, LookupKey(r.next, image, kc), func() (any, error) {
			return r.next.Resolve(context.WithoutCancel(ctx), image, kc)
		})
		if !answered {
			l.err = busy(ctx, image, host)
			return
		}
		l.img, _ = val.(*registry.Image)
		l.err = err
	})
	if err := wait(ctx, l, image, host); err != nil {
		return nil, err
	}
	return l.img, l.err
}

// LookupKey is what makes two reviews' lookups identical: the image, the
// credentials the kubelet would try for it from the pull secrets, with
// where each came from (an answer names them), and the pod identity a
// credential provider that takes service-account tokens would ask with
// (res.PullIdentity). Anonymous lookups of an image are identical in every
// namespace unless such a provider matches it; lookups with secrets only
// within one.
func LookupKey(res ImageResolver, image string, kc *registry.Keychain) string {
	repo, err := registry.KubeletName(image)
	if err != nil {
		return ""
	}
	var b strings.Builder
	b.WriteString(image)
	for _, c := range kc.Lookup(repo) {
		b.WriteString("|" + c.String() + "|" + c.Fingerprint())
	}
	if id := res.PullIdentity(image, kc); id != "" {
		b.WriteString("|identity|" + id)
	}
	return b.String()
}

func (r *reviewResolver) Platforms(ctx context.Context, img *registry.Image) ([]v1.Platform, error) {
	key := "platforms|" + img.Registry + "|" + img.Repository + "@" + img.Digest.String() + "|" + img.Credential
	l := shared(r, r.platforms, img, func(l *lookup) {
		val, err, answered := r.lookups.do(ctx, r.ns, registry.RegistryHost(img.Registry), key, func() (any, error) {
			return r.next.Platforms(context.WithoutCancel(ctx), img)
		})
		if !answered {
			l.err = busy(ctx, img.Repository, img.Registry)
			return
		}
		l.platforms, _ = val.([]v1.Platform)
		l.err = err
	})
	if err := wait(ctx, l, img.Repository, img.Registry); err != nil {
		return nil, err
	}
	return l.platforms, l.err
}

// PullPath takes a slot like Platforms. Its key holds the credential the
// walk is made with (PullCredential, not Credential, which is empty where a
// mirror served the tag): what a credential may read decides the answer.
func (r *reviewResolver) PullPath(ctx context.Context, img *registry.Image, platforms []v1.Platform) error {
	var b strings.Builder
	b.WriteString("pullpath|" + img.Registry + "|" + img.Repository + "@" + img.Digest.String() + "|" + img.PullCredential())
	for _, p := range platforms {
		b.WriteString("|" + p.OS + "/" + p.Architecture + "/" + p.Variant + "/" + p.OSVersion)
	}
	key := b.String()
	_, err, answered := r.lookups.do(ctx, r.ns, registry.RegistryHost(img.Registry), key, func() (any, error) {
		return nil, r.next.PullPath(context.WithoutCancel(ctx), img, platforms)
	})
	if !answered {
		return busy(ctx, img.Repository, img.Registry)
	}
	return err
}

func (r *reviewResolver) HasMirror(registry string) bool { return r.next.HasMirror(registry) }

func (r *reviewResolver) PullIdentity(image string, kc *registry.Keychain) string {
	return r.next.PullIdentity(image, kc)
}

// shared returns the lookup for key, running fn for it if this caller is
// the first to ask.
func shared[K comparable](r *reviewResolver, m map[K]*lookup, key K, fn func(*lookup)) *lookup {
	r.mu.Lock()
	l, ok := m[key]
	if !ok {
		l = &lookup{done: make(chan struct{})}
		m[key] = l
	}
	r.mu.Unlock()
	if !ok {
		func() {
			defer close(l.done)
			defer func() {
				// A panic must not leave the others waiting; the
				// caller's container recovers it as an internal warning.
				if p := recover(); p != nil {
					l.err = fmt.Errorf("lookup panicked: %v", p)
					panic(p)
				}
			}()
			fn(l)
		}()
	}
	return l
}

// wait blocks until l is answered or the review's deadline passes.
func wait(ctx context.Context, l *lookup, image, host string) error {
	select {
	case <-l.done:
		return nil
	case <-ctx.Done():
		return busy(ctx, image, host)
	}
}

// busy is the answer for a lookup the deadline did not leave time for:
// "cannot verify" (unreachable, timeout), which fails open.
func busy(ctx context.Context, image, host string) error {
	return &registry.Error{Reason: registry.Unreachable, Flavour: registry.FlavourTimeout, Image: image, Registry: host,
		Message: "no answer before the admission deadline (pullsafe's registry lookups were all busy)", Err: ctx.Err()}
}
