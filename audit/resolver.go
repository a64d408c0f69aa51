package audit

import (
	"context"
	"fmt"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pullsafe/pullsafe/policy"
	"github.com/pullsafe/pullsafe/registry"
)

// background is the resolver one audit pass looks images up with. It
// shares admission's resolver (its rate-limit windows: a registry's
// Retry-After holds for both; not its cached answers, which a background
// lookup skips to ask the registry again) and gives way to admission:
//
//   - a lookup starts only while no admission lookup holds a slot of the
//     admission Checker, and the audit runs one lookup at a time, so an
//     admission never waits for a slot behind the audit;
//   - it waits for the registry's budget before each lookup and charges
//     the budget for each request the lookup sends (registry.WithBudget);
//   - each (image, credentials) is looked up once a pass, whatever the
//     number of Pods and workloads naming it.
type background struct {
	next      policy.ImageResolver
	admission *policy.Checker
	// current is admission's Checker now: a config reload during the pass
	// replaces it, and the audit gives way to the lookups of both.
	current func() *policy.Checker
	budget  *budget
	sleep   func(context.Context, time.Duration) error
	poll    time.Duration

	mu        sync.Mutex
	images    map[imageKey]resolved
	platforms map[string]platforms
	paths     map[string]error // PullPath's answers, by image, credential and platforms
	lookups   int              // lookups passed on to next
	waits     int              // times a lookup waited for admission or the budget
}

// imageKey is policy.LookupKey: the image, the credentials of the pull
// secrets and, where a credential provider takes the pod's service-account
// token, the pod's identity. Pods of every namespace with the same
// credentials share one lookup a pass; one service account's never
// answers another's.
type imageKey string

type resolved struct {
	img *registry.Image
	err error
}

type platforms struct {
	p   []v1.Platform
	err error
}

// lookupCount is how many lookups the pass passed on so far. A lookup
// runs on in policy's lookup slots after a pass cut short stops waiting for
// it (its registry request is still out), and counts itself when it ends.
func (b *background) lookupCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lookups
}

func (b *background) Resolve(ctx context.Context, image string, kc *registry.Keychain) (*registry.Image, error) {
	raw := policy.LookupKey(b.next, image, kc)
	if raw == "" {
		// A reference the kubelet cannot parse has no key: its answer
		// (naming it) must not stand for another such image.
		return b.next.Resolve(registry.WithBudget(ctx, b.budget), image, kc)
	}
	k := imageKey(raw)
	b.mu.Lock()
	r, ok := b.images[k]
	b.mu.Unlock()
	if ok {
		return r.img, r.err
	}
	if err := b.turn(ctx, registry.HostOf(image)); err != nil {
		return nil, err
	}
	img, err := b.next.Resolve(registry.WithBudget(ctx, b.budget), image, kc)
	b.mu.Lock()
	b.images[k] = resolved{img, err}
	b.lookups++
	b.mu.Unlock()
	return img, err
}

func (b *background) Platforms(ctx context.Context, img *registry.Image) ([]v1.Platform, error) {
	k := img.Registry + "/" + img.Repository + "@" + img.Digest.String()
	b.mu.Lock()
	r, ok := b.platforms[k]
	b.mu.Unlock()
	if ok {
		return r.p, r.err
	}
	if err := b.turn(ctx, registry.RegistryHost(img.Registry)); err != nil {
		return nil, err
	}
	p, err := b.next.Platforms(registry.WithBudget(ctx, b.budget), img)
	b.mu.Lock()
	b.platforms[k] = platforms{p, err}
	b.lookups++
	b.mu.Unlock()
	return p, err
}

// PullPath is walked once a pass per image, credential and platforms.
func (b *background) PullPath(ctx context.Context, img *registry.Image, platforms []v1.Platform) error {
	k := img.Registry + "/" + img.Repository + "@" + img.Digest.String() + "|" + img.PullCredential() + "|" + fmt.Sprint(platforms)
	b.mu.Lock()
	err, ok := b.paths[k]
	b.mu.Unlock()
	if ok {
		return err
	}
	if err := b.turn(ctx, registry.RegistryHost(img.Registry)); err != nil {
		return err
	}
	err = b.next.PullPath(registry.WithBudget(ctx, b.budget), img, platforms)
	b.mu.Lock()
	b.paths[k] = err
	b.lookups++
	b.mu.Unlock()
	return err
}

func (b *background) HasMirror(registry string) bool { return b.next.HasMirror(registry) }

func (b *background) PullIdentity(image string, kc *registry.Keychain) string {
	return b.next.PullIdentity(image, kc)
}

// turn waits until admission holds no lookup slot and host's budget has a
// token. A pass cut short by ctx gets "cannot verify", never a finding.
func (b *background) turn(ctx context.Context, host string) error {
	for {
		d := b.budget.delay(host)
		if d == 0 && b.admission.LookupsInFlight() == 0 && b.current().LookupsInFlight() == 0 {
			return nil
		}
		if d == 0 {
			d = b.poll
		}
		b.mu.Lock()
		b.waits++
		b.mu.Unlock()
		if err := b.sleep(ctx, d); err != nil {
			return &registry.Error{Reason: registry.Unreachable, Flavour: registry.FlavourTimeout, Registry: host,
				Message: "the audit pass ended before its turn for this registry", Err: err}
		}
	}
}

// sleepCtx sleeps d, or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
