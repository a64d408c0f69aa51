package webhook

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"golang.org/x/sync/singleflight"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// ServiceAccountTokens requests service-account tokens through the
// TokenRequest API (serviceaccounts/token create) for the credential
// providers that take the pod's token (KEP-4412), as the kubelet's token
// manager does for its pods. At admission the Pod does not exist yet, so
// the token is bound to the service account only (no bound object), with
// its UID as precondition and the provider's audience.
//
// Tokens are kept until 80% of their lifetime has passed (the kubelet's
// token manager refreshes at the same point), at most maxTokens of them: a
// rollout of 100 pods of one service account costs one TokenRequest. The
// key is namespace, name, UID and audience: a service account deleted and
// recreated under the same name never gets the old one's token.
type ServiceAccountTokens struct {
	c       client.SubResourceClientConstructor
	now     func() time.Time
	mu      sync.Mutex
	cache   *simplelru.LRU[string, cachedToken]
	flights singleflight.Group
}

const maxTokens = 1024

type cachedToken struct {
	token   string
	refresh time.Time
}

// TokenClient is what requesting tokens takes of a controller-runtime
// client.
type TokenClient = client.SubResourceClientConstructor

// NewServiceAccountTokens requests tokens with c.
func NewServiceAccountTokens(c TokenClient) *ServiceAccountTokens {
	lru, _ := simplelru.NewLRU[string, cachedToken](maxTokens, nil)
	return &ServiceAccountTokens{c: c, now: time.Now, cache: lru}
}

// Token returns a token of sa for audience.
func (t *ServiceAccountTokens) Token(ctx context.Context, sa *corev1.ServiceAccount, audience string) (string, error) {
	key := fmt.Sprintf("%s/%s/%s/%d:%s", sa.Namespace, sa.Name, sa.UID, len(audience), audience)
	t.mu.Lock()
	c, ok := t.cache.Get(key)
	t.mu.Unlock()
	if ok && t.now().Before(c.refresh) {
		return c.token, nil
	}
	ch := t.flights.DoChan(key, func() (any, error) {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), getTimeout)
		defer cancel()
		return t.request(rctx, key, sa, audience)
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return "", res.Err
		}
		return res.Val.(string), nil
	case <-ctx.Done():
		return "", fmt.Errorf("no token before the admission deadline: %w", ctx.Err())
	}
}

func (t *ServiceAccountTokens) request(ctx context.Context, key string, sa *corev1.ServiceAccount, audience string) (string, error) {
	tr := &authenticationv1.TokenRequest{
		ObjectMeta: metav1.ObjectMeta{UID: sa.UID},
		Spec:       authenticationv1.TokenRequestSpec{Audiences: []string{audience}},
	}
	target := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: sa.Namespace, Name: sa.Name}}
	issued := t.now()
	if err := t.c.SubResource("token").Create(ctx, target, tr); err != nil {
		return "", fmt.Errorf("TokenRequest for service account %s/%s: %w", sa.Namespace, sa.Name, err)
	}
	if tr.Status.Token == "" {
		return "", fmt.Errorf("TokenRequest for service account %s/%s returned no token", sa.Namespace, sa.Name)
	}
	life := tr.Status.ExpirationTimestamp.Sub(issued)
	if life > 0 {
		t.mu.Lock()
		t.cache.Add(key, cachedToken{token: tr.Status.Token, refresh: issued.Add(life * 8 / 10)})
		t.mu.Unlock()
	}
	return tr.Status.Token, nil
}

// ServiceAccountToken makes the cluster a policy.TokenRequester once
// tokens are set (SetTokens): only with a credential provider that takes
// tokens does pullsafe need, or get, the RBAC to create them.
func (c *ClientCluster) ServiceAccountToken(ctx context.Context, sa *corev1.ServiceAccount, audience string) (string, error) {
	if c.tokens == nil {
		return "", fmt.Errorf("pullsafe requests no service-account tokens (no credential provider with tokenAttributes at start)")
	}
	return c.tokens.Token(ctx, sa, audience)
}

// SetTokens lets the cluster request service-account tokens with t.
func (c *ClientCluster) SetTokens(t *ServiceAccountTokens) { c.tokens = t }
