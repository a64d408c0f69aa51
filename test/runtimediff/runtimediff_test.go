// Package runtimediff compares pullsafe's verdicts with what the runtime
// under the kubelet does: for each generated registry situation, pullsafe
// checks a Pod as admission does, and a real containerd (v2.4.2, built by
// test/tools/build.sh) pulls the image through CRI with the credentials the
// kubelet's keyring selects, in the kubelet's order. A separate module so
// that k8s.io/kubernetes, cri-api and grpc never reach pullsafe's go.mod.
package runtimediff

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pullsafe/pullsafe/test/bed"
)

// verdict is pullsafe's answer, or "skipped" when pullsafe cannot be told
// what the case's hosts.toml says.
type verdict string

const (
	deny    verdict = "deny"
	warn    verdict = "warn"
	allow   verdict = "allow"
	skipped verdict = "skipped"
)

// outcome is one case's two answers.
type outcome struct {
	name       string
	pullsafe   verdict
	message    string // pullsafe's denial or warnings
	pulled     bool
	runtimeErr string // containerd's last error
}

// TestRuntimeAgreesWithPullsafe is the differential. It fails on a case
// pullsafe denies and containerd pulls (a false denial), and on a case
// pullsafe admits without a word and containerd fails unless known_gaps.txt
// lists it with its reason.
func TestRuntimeAgreesWithPullsafe(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("!!! RUNTIME DIFFERENTIAL SKIPPED: containerd needs root; pullsafe's verdicts were NOT compared with the runtime's")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	tools, err := bed.BuildTools(ctx, root, os.Stderr, "runtime")
	if err != nil {
		t.Fatal(err)
	}
	hostsDir := filepath.Join(t.TempDir(), "hosts")
	if err := os.Mkdir(hostsDir, 0o755); err != nil {
		t.Fatal(err)
	}
	dockerHubMirror(t, hostsDir)
	gaps, err := readKnownGaps("known_gaps.txt")
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	clients := map[string]*criClient{}
	var unrun []string // platforms whose node cannot be started here, said loudly
	for _, p := range []v1.Platform{amd64, arm64} {
		o, why := nodeOptions(tools, p, hostsDir, logs)
		if why != "" {
			unrun = append(unrun, p.Architecture+": "+why)
			continue
		}
		c, err := bed.StartContainerd(ctx, o)
		if err != nil {
			t.Fatalf("%v\n%s", err, logs.String())
		}
		t.Cleanup(c.Stop)
		cl, err := dialCRI(c.Socket)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cl.Close() })
		if err := cl.waitReady(ctx); err != nil {
			t.Fatalf("containerd %s: %v\n%s", p.Architecture, err, logs.String())
		}
		clients[p.Architecture] = cl
	}

	var mu sync.Mutex
	var outs []outcome
	notRun := 0
	run := t
	t.Run("cases", func(t *testing.T) {
		for _, c := range cases() {
			if clients[c.platform.Architecture] == nil {
				notRun++
				continue
			}
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				s := &setup{t: t, hostsDir: hostsDir, hold: run.Cleanup}
				c.build(s)
				o := outcome{name: c.name}
				o.pullsafe, o.message = pullsafeVerdict(ctx, t, s, c.platform)
				o.pulled, o.runtimeErr = clients[c.platform.Architecture].pullAsKubelet(ctx, t, s.image, s.creds)
				if strings.HasPrefix(o.runtimeErr, crashed) {
					t.Fatalf("containerd (%s): %s", c.platform.Architecture, o.runtimeErr)
				}
				t.Logf("case %s: pullsafe %s, containerd %s %s", c.name, o.pullsafe, pulledWord(o.pulled), oneLine(o.runtimeErr))
				mu.Lock()
				outs = append(outs, o)
				mu.Unlock()
			})
		}
	})
	if t.Failed() {
		t.Logf("containerd's log:\n%s", logs.String())
		return
	}
	slices.SortFunc(outs, func(a, b outcome) int { return strings.Compare(a.name, b.name) })
	fmt.Print(matrix(outs))
	for _, u := range unrun {
		fmt.Printf("!!! SKIPPED: %d cases of node platform %s\n", notRun, u)
	}
	problems, fixed := judge(outs, gaps)
	for _, f := range fixed {
		fmt.Println(f)
	}
	for _, problem := range problems {
		t.Error(problem)
	}
}

// pullsButCannotRun are the cases where containerd pulls what pullsafe
// denies because the node cannot run it: a single manifest of another
// architecture. CRI PullImage does not check a single manifest's platform
// (the transfer service's unpack matcher is OS-only unless
// check_platform_supported is set), so the pull succeeds and the container
// then fails to start (exec format error). pullsafe's platform rule
// (DESIGN: "no node the pod may land on can run it") denies it on purpose.
// Only a [platform] denial is excused: any other denial of these cases is a
// false denial like every other.
var pullsButCannotRun = map[string]bool{
	"amd64/image-arm64": true,
	"arm64/image-amd64": true,
}

// nodeOptions say how to start the node of platform p here, or why it
// cannot be: CRI pulls for the platform containerd was built for, so a node
// of another architecture is that architecture's containerd run under qemu
// user emulation.
func nodeOptions(tools string, p v1.Platform, hostsDir string, log io.Writer) (bed.ContainerdOptions, string) {
	o := bed.ContainerdOptions{Bin: filepath.Join(tools, "containerd"), Platform: p.OS + "/" + p.Architecture, HostsDir: hostsDir, Log: log}
	if p.Architecture == runtime.GOARCH {
		return o, ""
	}
	if runtime.GOARCH != "amd64" || p.Architecture != "arm64" {
		return o, "the bed builds an arm64 containerd for amd64 machines only"
	}
	o.Bin = filepath.Join(tools, "containerd-linux-arm64")
	emu, err := exec.LookPath("qemu-aarch64-static")
	if err != nil {
		return o, "qemu-aarch64-static not found (Debian package qemu-user-static; test/runtimediff/run.sh installs it)"
	}
	o.Emulator = emu
	return o, ""
}

// judge returns what fails the differential, and what the known gaps list
// should lose. (TestKnownGapsNameCases keeps the list to existing cases.)
func judge(outs []outcome, gaps map[string]string) (problems, fixed []string) {
	for _, o := range outs {
		switch {
		case o.pullsafe == deny && o.pulled && pullsButCannotRun[o.name] && isPlatformOnly(o.message):
			// Reported by matrix; the node cannot run it.
		case o.pullsafe == deny && o.pulled:
			problems = append(problems, fmt.Sprintf("FALSE DENIAL %s: pullsafe denies (%s) and containerd pulls", o.name, o.message))
		case o.pullsafe == allow && !o.pulled:
			if _, ok := gaps[o.name]; !ok {
				problems = append(problems, fmt.Sprintf("UNLISTED GAP %s: pullsafe allows without a warning and containerd fails (%s); "+
					"fix it, or list it in known_gaps.txt with its reason", o.name, o.runtimeErr))
			}
		case o.pullsafe != skipped:
			if reason, ok := gaps[o.name]; ok {
				fixed = append(fixed, fmt.Sprintf("fixed: remove from known gaps: %s (%s): pullsafe %s, containerd %s",
					o.name, reason, o.pullsafe, pulledWord(o.pulled)))
			}
		}
	}
	slices.Sort(problems)
	return problems, fixed
}

// isPlatformOnly: every rule a denial names is the platform rule.
func isPlatformOnly(msg string) bool {
	return strings.Contains(msg, "[platform]") && strings.Count(msg, "[") == strings.Count(msg, "[platform]")
}

func pulledWord(pulled bool) string {
	if pulled {
		return "pulls"
	}
	return "fails"
}

// matrix is the confusion matrix, then every case that is not plain
// agreement (deny/fails, allow/pulls), and the skipped ones loudly.
func matrix(outs []outcome) string {
	count := map[[2]string]int{}
	for _, o := range outs {
		count[[2]string{string(o.pullsafe), pulledWord(o.pulled)}]++
	}
	var b strings.Builder
	fmt.Fprintf(&b, "== runtime differential: pullsafe vs containerd v2.4.2 CRI PullImage, %d cases\n", len(outs))
	fmt.Fprintf(&b, "%-28s %8s %8s\n", "pullsafe \\ containerd", "pulls", "fails")
	for _, v := range []verdict{deny, warn, allow, skipped} {
		label := string(v)
		switch v {
		case warn:
			label = "warn (cannot verify/warning)"
		case skipped:
			label = "SKIPPED (no hostsDir)"
		}
		fmt.Fprintf(&b, "%-28s %8d %8d\n", label, count[[2]string{string(v), "pulls"}], count[[2]string{string(v), "fails"}])
	}
	for _, o := range outs {
		switch {
		case o.pullsafe == skipped:
			fmt.Fprintf(&b, "SKIPPED (pullsafe has no registries.hostsDir): %s (containerd %s)\n", o.name, pulledWord(o.pulled))
		case o.pullsafe == deny && o.pulled && pullsButCannotRun[o.name] && isPlatformOnly(o.message):
			fmt.Fprintf(&b, "pullsafe denies, containerd pulls (the node cannot run it: another architecture's single manifest): %s\n    pullsafe: %s\n",
				o.name, oneLine(o.message))
		case o.pullsafe == deny && o.pulled:
			fmt.Fprintf(&b, "pullsafe denies, containerd pulls: %s\n    pullsafe: %s\n", o.name, oneLine(o.message))
		case o.pullsafe == allow && !o.pulled:
			fmt.Fprintf(&b, "pullsafe allows, containerd fails: %s\n    containerd: %s\n", o.name, oneLine(o.runtimeErr))
		case o.pullsafe == warn:
			fmt.Fprintf(&b, "pullsafe warns, containerd %s: %s\n    pullsafe: %s\n", pulledWord(o.pulled), o.name, oneLine(o.message))
			if !o.pulled {
				fmt.Fprintf(&b, "    containerd: %s\n", oneLine(o.runtimeErr))
			}
		}
	}
	return b.String()
}

// oneLine keeps a message to one line of at most 300 bytes.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// readKnownGaps reads "case-name: reason" lines; # starts a comment.
func readKnownGaps(file string) (map[string]string, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	gaps := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, reason, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(reason) == "" {
			return nil, fmt.Errorf("%s:%d: want \"case-name: reason\", got %q", file, n, line)
		}
		gaps[strings.TrimSpace(name)] = strings.TrimSpace(reason)
	}
	return gaps, sc.Err()
}

// syncBuffer collects the daemons' logs, shown when the test fails.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b.Len() > 1<<20 {
		return len(p), nil
	}
	return s.b.Write(p)
}

func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

var _ io.Writer = (*syncBuffer)(nil)
