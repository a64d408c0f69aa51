//go:build unix

package registry

import (
	"os/exec"
	"syscall"
)

// killGroup runs the plugin in a process group of its own and kills the
// whole group when its context ends: a plugin is often a shell script or a
// wrapper whose children would otherwise outlive it, one orphan per
// hanging lookup.
func killGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
}
