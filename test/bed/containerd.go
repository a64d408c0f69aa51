package bed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Containerd is a containerd daemon of the test bed: the runtime under the
// kubelet, which the differential test (test/runtimediff) asks through CRI
// what a node would pull. Its root, state and sockets live in a folder of
// its own; its registry configuration is a hosts directory (containerd's
// config_path) shared with the caller.
type Containerd struct {
	// Socket is the CRI (and containerd API) endpoint: unix://Socket.
	Socket string
	// Platform is the node platform it unpacks for, e.g. "linux/arm64".
	Platform string

	dir  string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// ErrNotRoot: containerd needs root (mounts, chown of unpacked layers).
var ErrNotRoot = errors.New("containerd needs root; run as root to compare verdicts with the runtime")

// containerdConfig is what a node's containerd needs to pull through CRI
// and nothing more: the native snapshotter (no overlay mounts, no kernel
// modules), the hosts directory for both the CRI image service and the
// transfer service it pulls through, and the platform to unpack (without
// unpack_config, CRI PullImage fails: "no unpack platforms defined"). The
// differ is named: containerd picks one by platform otherwise, and the
// walking differ registers the host's only ("no matching diff plugins" for
// an arm64 node on amd64). Unpacking another platform's layers is just
// untarring them; nothing is run.
const containerdConfig = `version = 3
root = %[1]q
state = %[2]q

[grpc]
  address = %[3]q

[ttrpc]
  address = %[4]q

[plugins]
  [plugins."io.containerd.cri.v1.images"]
    snapshotter = "native"
    [plugins."io.containerd.cri.v1.images".registry]
      config_path = %[5]q
  [plugins."io.containerd.transfer.v1.local"]
    config_path = %[5]q
    [[plugins."io.containerd.transfer.v1.local".unpack_config]]
      platform = %[6]q
      snapshotter = "native"
      differ = "walking"
`

// ContainerdOptions say which node a containerd plays.
type ContainerdOptions struct {
	// Bin is the containerd the tools build made for the node's platform:
	// CRI PullImage picks an index's manifest for the platform containerd
	// was built for (platforms.DefaultSpec()), whatever its config says.
	Bin string
	// Emulator runs Bin when it is another architecture's binary, e.g.
	// qemu-aarch64-static; empty runs Bin itself.
	Emulator string
	Platform string // "linux/arm64": what it unpacks for
	HostsDir string // containerd's config_path: <host>/hosts.toml
	Log      io.Writer
}

// StartContainerd starts containerd as a node whose registries are
// configured by o.HostsDir, and waits until its socket accepts
// connections. Stop ends it.
func StartContainerd(ctx context.Context, o ContainerdOptions) (*Containerd, error) {
	platform, hostsDir := o.Platform, o.HostsDir
	if os.Geteuid() != 0 {
		return nil, ErrNotRoot
	}
	// A short path: a unix socket's path is limited to 108 bytes, and
	// t.TempDir's names are long.
	dir, err := os.MkdirTemp("", "ctrd-")
	if err != nil {
		return nil, err
	}
	c := &Containerd{Socket: filepath.Join(dir, "containerd.sock"), Platform: platform, dir: dir, done: make(chan struct{})}
	cfg := fmt.Sprintf(containerdConfig, filepath.Join(dir, "root"), filepath.Join(dir, "state"), c.Socket,
		filepath.Join(dir, "ttrpc.sock"), hostsDir, platform)
	file := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	args := []string{o.Bin, "--config", file, "--log-level", "warn"}
	if o.Emulator != "" {
		args = append([]string{o.Emulator}, args...)
	}
	c.cmd = exec.Command(args[0], args[1:]...)
	// A process group of its own, killed with the test process even if that
	// dies without cleaning up.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	w := &prefixWriter{prefix: "[containerd " + platform + "] ", w: o.Log}
	c.cmd.Stdout, c.cmd.Stderr = w, w
	if err := c.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("starting containerd: %w", err)
	}
	go func() { c.err = c.cmd.Wait(); close(c.done) }()
	if err := c.waitSocket(ctx, 60*time.Second); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

func (c *Containerd) waitSocket(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	for {
		conn, err := d.DialContext(ctx, "unix", c.Socket)
		if err == nil {
			conn.Close()
			return nil
		}
		select {
		case <-c.done:
			return fmt.Errorf("containerd (%s) exited before it was ready: %v", c.Platform, c.err)
		case <-ctx.Done():
			return fmt.Errorf("containerd (%s) socket %s not ready after %s: %v", c.Platform, c.Socket, timeout, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Stop sends SIGTERM to containerd's process group, SIGKILL after 10 s,
// then removes its folder; nil-safe, idempotent.
func (c *Containerd) Stop() {
	if c == nil || c.cmd == nil || c.cmd.Process == nil {
		return
	}
	pgid := c.cmd.Process.Pid
	select {
	case <-c.done:
	default:
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-c.done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-c.done
		}
	}
	// Whatever it started and left behind in its group goes too.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	if c.dir != "" && strings.HasPrefix(filepath.Base(c.dir), "ctrd-") {
		_ = os.RemoveAll(c.dir)
		c.dir = ""
	}
}
