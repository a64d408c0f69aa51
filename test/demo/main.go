// Command demo shows pullsafe doing its job on a real, local test bed: a
// kube-apiserver with etcd, two distribution registries, pullsafe registered
// as admission webhook, and kubectl. It prints every kubectl command with its
// real output, then stops everything it started (also on Ctrl-C). It says
// up front what it will do and how long a first run takes, and every stage
// of the start-up as it goes: a first run builds the test bed from source.
//
//	go run ./test/demo [-v]    (`make demo` builds the bed and the demo with progress first)
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/pullsafe/pullsafe/test/bed"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx)
	if ctx.Err() != nil {
		fmt.Fprintln(os.Stderr, "demo: interrupted; everything it started is stopped")
		os.Exit(130)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	verbose := flag.Bool("v", false, "show the logs of every process started")
	flag.Parse()
	var log io.Writer = io.Discard
	if *verbose {
		log = os.Stderr
	}
	say("What this demo does")
	fmt.Print(plan)
	say("Starting a local test bed, stage by stage")
	start := time.Now()
	b, err := bed.Start(ctx, bed.Options{Config: bed.Config, Log: log, Progress: os.Stdout})
	if err != nil {
		return err
	}
	defer func() {
		say("Stopping everything the demo started")
		b.Stop()
	}()
	fmt.Printf("   ready in %s: API server, registry %s (open), registry %s (password), pullsafe in mode enforce\n",
		time.Since(start).Round(time.Second), b.Open.Addr, b.Private.Addr)

	say("The test bed is up: five kubectl applies, each answered by pullsafe at admission")
	d := demo{b: b}
	steps := []func(context.Context) error{d.seed, d.typo, d.private, d.platform, d.warn}
	for _, step := range steps {
		if ctx.Err() != nil {
			return nil // Ctrl-C: the deferred Stop cleans up
		}
		if err := step(ctx); err != nil {
			return err
		}
	}
	say("Done. Each refusal above happened at kubectl apply, not minutes later as ImagePullBackOff.")
	return nil
}

// plan is what the demo tells a newcomer before anything runs. The first-run
// times are measured (README, "Quick start"), on a shared 2-core machine.
const plan = `   1. Start a local test bed: etcd + kube-apiserver, kube-controller-manager, two
      distribution registries (one open, one with a password), and pullsafe built from this
      checkout, registered as the API server's admission webhook in mode enforce.
      The first run builds these from source (Go module proxy) into ~/.cache/pullsafe-tools:
      measured, about 12 minutes on an idle 2-core machine (kube-apiserver is most of it),
      plus compiling the demo and pullsafe, longer on a busy machine; every stage below says
      what it builds, with a line every 30 s while it runs. Later runs: the bed is up in
      under a minute (29 s and 57 s measured on a busy 2-core machine).
   2. Push test images, then show five kubectl applies: a tag typo, a private image without its
      pull secret, an amd64-only image on arm64 nodes, the same typo in a warn namespace, and a
      server-side dry run.
   3. Stop everything it started (also on Ctrl-C).
`

type demo struct{ b *bed.Bed }

func say(s string) {
	if fi, err := os.Stdout.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
		fmt.Printf("\n\033[1m== %s\033[0m\n", s)
		return
	}
	fmt.Printf("\n== %s\n", s)
}

// kubectl prints the command as a user would type it, then its real output.
func (d demo) kubectl(stdin string, args ...string) {
	shown := "kubectl " + strings.Join(args, " ")
	if stdin != "" {
		fmt.Printf("$ %s <<EOF\n%sEOF\n", shown, stdin)
	} else {
		fmt.Printf("$ %s\n", shown)
	}
	out, errOut, err := d.b.Run(stdin, args...)
	fmt.Print(indent(out + errOut))
	if err != nil {
		fmt.Println("   (exit status non-zero)")
	}
}

func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return ""
	}
	return "   " + strings.ReplaceAll(s, "\n", "\n   ") + "\n"
}

func (d demo) seed(ctx context.Context) error {
	say("Pushing test images (random layers, real manifests) and creating namespaces and nodes")
	multi := []bed.Platform{bed.Linux("amd64"), bed.Linux("arm64")}
	for _, p := range []struct {
		reg       *bed.Process
		repo, tag string
		plats     []bed.Platform
	}{
		{d.b.Open, "team/api", "v1.4.0", multi}, {d.b.Open, "team/api", "v1.4.1", multi},
		{d.b.Open, "tools/amd-only", "v1", []bed.Platform{bed.Linux("amd64")}},
		{d.b.Private, "team/payments", "v2", multi},
	} {
		if _, err := d.b.Push(p.reg, p.repo, p.tag, p.plats...); err != nil {
			return err
		}
		fmt.Printf("   pushed %s/%s:%s\n", p.reg.Addr, p.repo, p.tag)
	}
	for _, ns := range []string{"shop", "staging"} {
		labels := map[string]string(nil)
		if ns == "staging" {
			labels = map[string]string{"pullsafe.io/mode": "warn"}
		}
		if err := d.b.Namespace(ctx, ns, labels); err != nil {
			return err
		}
	}
	fmt.Println("   namespaces: shop (enforce), staging (label pullsafe.io/mode=warn)")
	return d.b.SetNodes(ctx, "arm64", "arm64")
}

func (d demo) typo(context.Context) error {
	say("1. A typo in a tag: refused, with the tags that do exist")
	d.kubectl(deployment("shop", "api", d.b.Open.Addr+"/team/api:v1.4.2"), "apply", "-f", "-")
	return nil
}

func (d demo) private(context.Context) error {
	img := d.b.Private.Addr + "/team/payments:v2"
	say("2. A private image without a pull secret: refused, saying which secret is missing")
	d.kubectl(pod("shop", "payments", img, ""), "apply", "-f", "-")
	say("   ... create the secret, reference it: admitted, and the tag pinned to the digest that was checked")
	d.kubectl("", "-n", "shop", "create", "secret", "docker-registry", "regcred", "--docker-server="+d.b.Private.Addr,
		"--docker-username="+bed.PrivateUser, "--docker-password="+bed.PrivatePass)
	d.kubectl(pod("shop", "payments", img, "regcred"), "apply", "-f", "-")
	d.kubectl("", "-n", "shop", "get", "pod", "payments", "-o", "jsonpath={.spec.containers[0].image}{\"\\n\"}")
	return nil
}

func (d demo) platform(context.Context) error {
	say("3. An amd64-only image on a cluster of arm64 nodes: refused")
	d.kubectl("", "get", "nodes", "-L", "kubernetes.io/arch")
	d.kubectl(pod("shop", "tool", d.b.Open.Addr+"/tools/amd-only:v1", ""), "apply", "-f", "-")
	return nil
}

func (d demo) warn(context.Context) error {
	say("4. Rolling out: in a namespace labelled pullsafe.io/mode=warn the same mistake is admitted with a warning")
	d.kubectl(deployment("staging", "api", d.b.Open.Addr+"/team/api:v1.4.2"), "apply", "-f", "-")
	say("5. A CI pre-flight: kubectl apply --dry-run=server gets the same answer without creating anything")
	d.kubectl(deployment("shop", "api", d.b.Open.Addr+"/team/api:v1.4.2"), "apply", "--dry-run=server", "-f", "-")
	return nil
}

func pod(ns, name, image, secret string) string {
	s := fmt.Sprintf("apiVersion: v1\nkind: Pod\nmetadata: {name: %s, namespace: %s}\nspec:\n", name, ns)
	if secret != "" {
		s += fmt.Sprintf("  imagePullSecrets: [{name: %s}]\n", secret)
	}
	return s + fmt.Sprintf("  containers: [{name: %s, image: \"%s\"}]\n", name, image)
}

func deployment(ns, name, image string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: %s, namespace: %s}
spec:
  selector: {matchLabels: {app: %s}}
  template:
    metadata: {labels: {app: %s}}
    spec:
      containers: [{name: %s, image: "%s"}]
`, name, ns, name, name, name, image)
}
