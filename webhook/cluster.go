package webhook

import (
	"context"
	"fmt"
	"time"

	"golang.org/x/sync/singleflight"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pullsafe/pullsafe/policy"
)

// Cluster is what the handler reads from the API server. Secrets and service
// accounts are read with get (no cluster-wide list/watch of secrets) on every
// review; namespaces and nodes come from informers.
type Cluster interface {
	// Secret returns the secret, or (nil, nil) if it does not exist.
	Secret(ctx context.Context, namespace, name string) (*corev1.Secret, error)
	// ServiceAccount returns the service account, or (nil, nil) if it does not exist.
	ServiceAccount(ctx context.Context, namespace, name string) (*corev1.ServiceAccount, error)
	NamespaceLabels(ctx context.Context, name string) (map[string]string, error)
	// Nodes returns nil when nodes are unknown, an empty slice when there are none.
	Nodes(ctx context.Context) ([]policy.Node, error)
}

// getTimeout bounds one shared GET, which outlives the caller that started
// it so that the others waiting on it are not failed by its cancellation.
const getTimeout = 10 * time.Second

// ClientCluster implements Cluster with controller-runtime clients: cached
// for nodes and namespaces, direct for secrets and service accounts.
type ClientCluster struct {
	cached client.Reader
	direct client.Reader
	gets   singleflight.Group
	state  state
	tokens *ServiceAccountTokens // SetTokens (tokens.go)
}

// NewClientCluster returns a Cluster reading through cached (informers) and
// direct (API reader) clients.
func NewClientCluster(cached, direct client.Reader) *ClientCluster {
	return &ClientCluster{cached: cached, direct: direct}
}

func (c *ClientCluster) Secret(ctx context.Context, namespace, name string) (*corev1.Secret, error) {
	s, err := getCached(ctx, c, "secret", namespace, name, func() client.Object { return &corev1.Secret{} })
	if s == nil {
		return nil, err
	}
	return s.(*corev1.Secret), err
}

func (c *ClientCluster) ServiceAccount(ctx context.Context, namespace, name string) (*corev1.ServiceAccount, error) {
	s, err := getCached(ctx, c, "sa", namespace, name, func() client.Object { return &corev1.ServiceAccount{} })
	if s == nil {
		return nil, err
	}
	return s.(*corev1.ServiceAccount), err
}

// getCached gets an object with the direct reader. Nothing is remembered
// between reviews: a secret created or corrected to fix a denial must work
// on the very next apply, as it does for the kubelet, which watches the
// secrets its pods use (pullsafe may only get them). Concurrent gets of one
// key share one request, so a rollout's burst of identical pods costs one
// GET per secret per burst, served from the API server's watch cache.
func getCached(ctx context.Context, c *ClientCluster, kind, namespace, name string, newObj func() client.Object) (client.Object, error) {
	key := kind + "/" + namespace + "/" + name
	ch := c.gets.DoChan(key, func() (v any, err error) {
		// DoChan re-panics a panic in a goroutine of its own, where no
		// recover reaches: it would end the process. An error fails open.
		defer func() {
			if p := recover(); p != nil {
				v, err = nil, fmt.Errorf("reading %s %s/%s: internal error (panic: %v)", kind, namespace, name, p)
			}
		}()
		gctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), getTimeout)
		defer cancel()
		obj := newObj()
		err = c.direct.Get(gctx, types.NamespacedName{Namespace: namespace, Name: name}, obj)
		switch {
		case apierrors.IsNotFound(err):
			return nil, nil
		case err != nil:
			return nil, err
		}
		return obj, nil
	})
	select {
	case res := <-ch:
		if res.Err != nil || res.Val == nil {
			return nil, res.Err
		}
		return res.Val.(client.Object), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *ClientCluster) NamespaceLabels(ctx context.Context, name string) (map[string]string, error) {
	if c.state.tracking.Load() {
		if l, ok := c.state.namespaces.Load(name); ok {
			return l.(map[string]string), nil
		}
		// Not seen yet (created a moment ago): ask the cache.
	}
	ns := namespaceMeta() // the informer CacheOptions configures, not a second one
	if err := c.cached.Get(ctx, types.NamespacedName{Name: name}, ns); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	return ns.Labels, nil
}

// Nodes returns errNodesLoading (and no nodes) while the informer has not
// yet delivered its whole initial list: the platform rule is then skipped
// with a note rather than judged against some of the nodes.
func (c *ClientCluster) Nodes(ctx context.Context) ([]policy.Node, error) {
	if c.state.tracking.Load() {
		return c.state.nodeList()
	}
	var list corev1.NodeList
	if err := c.cached.List(ctx, &list); err != nil {
		return nil, err
	}
	out := make([]policy.Node, 0, len(list.Items))
	for _, n := range list.Items {
		out = append(out, policy.NodeOf(&n))
	}
	return out, nil
}
