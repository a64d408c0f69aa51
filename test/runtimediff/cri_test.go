package runtimediff

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/kubernetes/pkg/credentialprovider"
	"k8s.io/kubernetes/pkg/credentialprovider/secrets"
	"k8s.io/kubernetes/pkg/util/parsers"
)

// pullTimeout bounds one PullImage: far above a pull from a loopback
// registry (~100 ms) and a slow one (a few slowDelays).
const pullTimeout = 60 * time.Second

// crashed prefixes the error of a PullImage the runtime did not answer.
const crashed = "CRI not answering: "

// criClient is the kubelet's view of a node's runtime: its CRI image
// service.
type criClient struct {
	conn   *grpc.ClientConn
	images runtimeapi.ImageServiceClient
}

func dialCRI(socket string) (*criClient, error) {
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	return &criClient{conn: conn, images: runtimeapi.NewImageServiceClient(conn)}, nil
}

func (c *criClient) Close() error { return c.conn.Close() }

// waitReady waits until the image service answers: containerd listens on
// its socket before the CRI plugin has registered ("unknown service
// runtime.v1.ImageService").
func (c *criClient) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		_, err := c.images.ListImages(ctx, &runtimeapi.ListImagesRequest{})
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("CRI image service not ready: %w", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// kubeletCredentials are the credentials the kubelet's keyring selects for
// image from the Pod's pull secret, in the order it tries them
// (pkg/kubelet/images/image_manager.go: parsers.ParseImageName, then
// MakeDockerKeyring(pullSecrets, node keyring).Lookup(repoToPull)). The
// node has no credentials of its own here.
func kubeletCredentials(t *testing.T, image string, creds []cred) []credentialprovider.TrackedAuthConfig {
	if len(creds) == 0 {
		return nil
	}
	repoToPull, _, _, err := parsers.ParseImageName(image)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := secrets.MakeDockerKeyring([]corev1.Secret{*secretOf(t, creds)}, &credentialprovider.BasicDockerKeyring{})
	if err != nil {
		t.Fatal(err)
	}
	found, _ := kr.Lookup(repoToPull)
	return found
}

// pullAsKubelet pulls image as the kubelet does
// (pkg/kubelet/kuberuntime/kuberuntime_image.go PullImage): without
// credentials when the keyring has none, else one PullImage per
// credential, in order, until one succeeds. It returns whether the image
// was pulled and the last error.
func (c *criClient) pullAsKubelet(ctx context.Context, t *testing.T, image string, creds []cred) (bool, string) {
	spec := &runtimeapi.ImageSpec{Image: image}
	found := kubeletCredentials(t, image, creds)
	if len(found) == 0 {
		return c.pull(ctx, spec, nil)
	}
	var last string
	for _, cr := range found {
		auth := &runtimeapi.AuthConfig{Username: cr.Username, Password: cr.Password, Auth: cr.Auth,
			ServerAddress: cr.ServerAddress, IdentityToken: cr.IdentityToken, RegistryToken: cr.RegistryToken}
		ok, msg := c.pull(ctx, spec, auth)
		if ok {
			return true, ""
		}
		last = msg
	}
	return false, last
}

func (c *criClient) pull(ctx context.Context, spec *runtimeapi.ImageSpec, auth *runtimeapi.AuthConfig) (bool, string) {
	ctx, cancel := context.WithTimeout(ctx, pullTimeout)
	defer cancel()
	_, err := c.images.PullImage(ctx, &runtimeapi.PullImageRequest{Image: spec, Auth: auth})
	if err == nil {
		return true, ""
	}
	// The runtime itself not answering is the bed's failure, never a
	// verdict: counted as "fails" it would hide every false denial.
	if code := status.Code(err); code == codes.Unavailable || code == codes.Unimplemented {
		return false, crashed + err.Error()
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return false, "no answer within " + pullTimeout.String() + ": " + err.Error()
	}
	return false, err.Error()
}
