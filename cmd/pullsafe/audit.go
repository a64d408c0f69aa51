package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"text/tabwriter"

	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pullsafe/pullsafe/audit"
	"github.com/pullsafe/pullsafe/policy"
	"github.com/pullsafe/pullsafe/registry"
)

const auditUsage = `Usage: pullsafe audit [flags]

Looks up the images of the cluster's running Pods now, with each Pod's own
pull secrets and the same rules and messages as admission (one pass of the
audit pullsafe serve runs with audit.enabled), and prints the workloads that
would fail to pull. Needs list on pods cluster-wide, get on secrets,
replicasets, jobs and namespaces, list on nodes (without them: pullsafe's
defaults for every namespace, no platform rule; a note says so). Exit 0: nothing would fail; 1: something would;
2: usage error, unreachable cluster, no permission, or interrupted.

`

type auditOptions struct {
	localFlags
	ownNamespace string
	namespaces   stringList
	rate         int
}

func parseAuditFlags(args []string, stderr io.Writer) (*auditOptions, error) {
	var o auditOptions
	fset := o.flagSet("pullsafe audit", auditUsage, "the same policy config file as pullsafe serve (default: built-in defaults)",
		"as kubectl: $KUBECONFIG's files, else ~/.kube/config", stderr)
	fset.StringVar(&o.ownNamespace, "pullsafe-namespace", "pullsafe-system", "pullsafe's own namespace (serve's --namespace): never audited, like kube-system and kube-node-lease")
	fset.Var(&o.namespaces, "n", "audit only this namespace; repeatable (default: the config's audit.namespaces, else all)")
	fset.IntVar(&o.rate, "requests-per-minute", 0, "registry requests a minute, per registry (default: the config's audit.requestsPerMinute)")
	if err := fset.Parse(args); err != nil {
		return nil, err
	}
	if fset.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fset.Arg(0))
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	if o.rate < 0 || o.rate > policy.MaxAuditRequestsRate {
		return nil, fmt.Errorf("--requests-per-minute %d: want 1 to %d", o.rate, policy.MaxAuditRequestsRate)
	}
	return &o, nil
}

// auditCmd runs one audit pass against the cluster, without serve.
func auditCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseAuditFlags(args, stderr)
	if err != nil {
		return flagsError(err)
	}
	st, err := o.start()
	if err != nil {
		return err
	}
	if len(o.namespaces) > 0 {
		st.cfg.Audit.Namespaces = o.namespaces
	}
	if o.rate > 0 {
		st.cfg.Audit.RequestsPerMinute = o.rate
	}
	cl, err := o.kube.load(clientcmd.NewDefaultClientConfigLoadingRules())
	if err != nil {
		return usageError{err}
	}
	cluster, err := liveCluster(ctx, cl)
	if err != nil {
		return usageError{err}
	}
	kc, err := client.New(cl.rest, client.Options{})
	if err != nil {
		return usageError{fmt.Errorf("%s: %w", cl.name, err)}
	}
	if err := withTokens(cluster, st.providers, cl.rest); err != nil {
		return usageError{err}
	}
	checker, err := st.checker()
	if err != nil {
		return err
	}
	rep, err := audit.New(kc, cluster, func() *policy.Checker { return checker }, o.ownNamespace).Pass(ctx)
	if err != nil {
		// Exit 2, cannot audit: 1 says an image would fail to pull.
		return usageError{fmt.Errorf("%s: %w (pullsafe audit needs list on pods, get on secrets, replicasets and jobs)", cl.name, err)}
	}
	if err := printAudit(rep, o.output, stdout); err != nil {
		return err
	}
	if ctx.Err() != nil {
		// Interrupted: what it found is printed, but "nothing would fail"
		// is not known.
		return usageError{fmt.Errorf("interrupted after %d pods: the audit did not finish", rep.Pods)}
	}
	if rep.Failing() {
		return errWouldDeny
	}
	return nil
}

// printAudit writes the report as a table (one row per finding) or JSON.
func printAudit(rep *audit.Report, output string, w io.Writer) error {
	if output == "json" {
		e := json.NewEncoder(w)
		e.SetIndent("", "  ")
		return e.Encode(visibleReport(rep))
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if rep.Failing() {
		fmt.Fprintln(tw, "NAMESPACE\tWORKLOAD\tPODS\tRULE\tCONTAINER\tIMAGE\tCAUSE")
	}
	var fixes []string
	for _, r := range rep.Results {
		for _, f := range r.Findings {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\n", registry.Shown(r.Owner.Namespace), registry.Shown(r.Owner.String()), r.Pods, f.Rule,
				registry.QuotedShown(f.Container), registry.QuotedShown(f.Image), registry.Sanitize(f.Cause, 300))
			if fix := registry.Sanitize(f.Fix, 300); fix != "" && !slices.Contains(fixes, fix) {
				fixes = append(fixes, fix)
			}
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, fix := range fixes {
		fmt.Fprintln(w, "fix: "+fix)
	}
	for _, n := range rep.Notes {
		fmt.Fprintln(w, "note: "+registry.Sanitize(n, 512))
	}
	fmt.Fprintf(w, "%d running pods of %d workloads audited, %s would fail to pull\n", rep.Pods, rep.Workloads, plural(len(rep.Results), "workload"))
	return nil
}

// visibleReport is rep with containers and images as why shows them in
// JSON: anything unprintable escaped (\x1b, \u202e), never removed, so a
// hostile reference is visible as such.
func visibleReport(rep *audit.Report) *audit.Report {
	out := *rep
	out.Results = make([]audit.Result, len(rep.Results))
	for i, r := range rep.Results {
		r.Findings = slices.Clone(r.Findings)
		for j := range r.Findings {
			r.Findings[j].Container, r.Findings[j].Image = registry.Visible(r.Findings[j].Container), registry.Visible(r.Findings[j].Image)
		}
		out.Results[i] = r
	}
	return &out
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}
