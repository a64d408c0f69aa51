package policy

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pullsafe/pullsafe/registry"
)

var (
	digest1 = v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("1", 64)}
	digest2 = v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("2", 64)}
)

func linux(arch string) v1.Platform { return v1.Platform{OS: "linux", Architecture: arch} }

func pullSecret(name, host string) *corev1.Secret {
	auth := base64.StdEncoding.EncodeToString([]byte("u:p"))
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name}, Type: corev1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths":{"` + host + `":{"auth":"` + auth + `"}}}`)}}
}

// fixture is one admission as the Checker sees it, and the exact verdict:
// every rule's message is pinned here, with no HTTP involved.
type fixture struct {
	name    string
	cfg     func(*Config)
	ct      Container // Name "app" and Path are filled in
	spec    corev1.PodSpec
	creds   Credentials
	nodes   []Node
	pin     bool
	pinFix  string
	mode    Mode
	res     fakeResolver
	want    Verdict  // Object and Mode are filled in
	lookups []string // when set, exactly the images looked up
	kind    string   // "Deployment": a pod template; default a Pod
}

func (f fixture) run(t *testing.T) {
	t.Helper()
	cfg := DefaultConfig()
	if f.cfg != nil {
		f.cfg(cfg)
	}
	mode := f.mode
	if mode == "" {
		mode = ModeEnforce
	}
	ct := f.ct
	ct.Name, ct.List, ct.Path = "app", "containers", "/spec/containers/0/image"
	w := &Workload{Kind: "Pod", Name: "web", Namespace: "shop", Spec: f.spec, Containers: []Container{ct}}
	if f.kind != "" {
		w.Kind, w.Template = f.kind, true
	}
	nodes := f.nodes
	if nodes == nil {
		nodes = []Node{node("n1", "amd64"), node("n2", "amd64")}
	}
	res := f.res
	res.asked = &asked{}
	got := NewChecker(cfg, &res).Check(context.Background(), Input{Workload: w, Containers: w.Containers, Mode: mode,
		Pin: Pinning{On: f.pin, Fix: f.pinFix}, Credentials: f.creds, Nodes: nodes})
	want := f.want
	want.Object, want.Mode = "pod/web", mode
	if f.kind != "" {
		want.Object = strings.ToLower(f.kind) + "/web"
	}
	for i := range want.Findings {
		want.Findings[i].Container = "app"
		if want.Findings[i].Image == "" {
			want.Findings[i].Image = ct.Image
		}
	}
	if d := cmp.Diff(&want, got); d != "" {
		t.Errorf("verdict (-want +got):\n%s", d)
	}
	if d := cmp.Diff(f.lookups, res.asked.images, cmpopts.EquateEmpty()); f.lookups != nil && d != "" {
		t.Errorf("images looked up (-want +got):\n%s", d)
	}
}

func img(repo, tag string, d v1.Hash) *registry.Image {
	return &registry.Image{Repository: repo, Tag: tag, Digest: d, MediaType: "application/vnd.oci.image.index.v1+json", Registry: strings.SplitN(repo, "/", 2)[0]}
}

func TestRuleMessages(t *testing.T) {
	const api = "registry.corp.io/team/api:v1"
	found := func(image string, i *registry.Image, ps ...v1.Platform) fakeResolver {
		return fakeResolver{images: map[string]*registry.Image{image: i}, platforms: map[v1.Hash][]v1.Platform{i.Digest: ps}}
	}
	failing := func(image string, err error) fakeResolver { return fakeResolver{errs: map[string]error{image: err}} }
	ok := found(api, img("registry.corp.io/team/api", "v1", digest1), linux("amd64"))
	tests := []fixture{
		{name: "clean", ct: Container{Image: api, PullPolicy: corev1.PullAlways}, res: ok},
		{name: "pinned", ct: Container{Image: api, PullPolicy: corev1.PullAlways}, pin: true, res: ok,
			want: Verdict{Pins: []Pin{{Path: "/spec/containers/0/image", From: api, To: api + "@" + digest1.String()}}}},
		{name: "not-found tag", ct: Container{Image: "registry.corp.io/team/api:v1.4.9", PullPolicy: corev1.PullAlways},
			res: failing("registry.corp.io/team/api:v1.4.9", &registry.Error{Reason: registry.NotFound, Flavour: registry.FlavourTag,
				Registry: "registry.corp.io", Message: "manifest unknown", Suggestions: []string{"v1.4.2", "v1.4.1"}}),
			want: Verdict{Findings: []Finding{{Rule: RuleNotFound, Action: ActionDeny,
				Cause: "manifest unknown — the tag does not exist in registry.corp.io/team/api; nearest tags: v1.4.2, v1.4.1",
				Fix:   "did you mean v1.4.2? correct the tag, or push the image before applying"}}}},
		{name: "not-found tag of a Docker Hub image is named as the kubelet names it", ct: Container{Image: "nginx:1.99", PullPolicy: corev1.PullAlways},
			creds: Credentials{Keychain: registry.NewKeychain([]*corev1.Secret{pullSecret("hub", "docker.io")})},
			res:   failing("nginx:1.99", &registry.Error{Reason: registry.NotFound, Flavour: registry.FlavourTag, Registry: "index.docker.io"}),
			want: Verdict{Findings: []Finding{{Rule: RuleNotFound, Action: ActionDeny,
				Cause: "not found — the tag does not exist in docker.io/library/nginx",
				Fix:   "correct the image name or tag, or push the image before applying"}}}},
		{name: "not-found repository", ct: Container{Image: api, PullPolicy: corev1.PullAlways},
			res: failing(api, &registry.Error{Reason: registry.NotFound, Flavour: registry.FlavourRepository, Registry: "registry.corp.io", Message: "repository name not known to registry"}),
			want: Verdict{Findings: []Finding{{Rule: RuleNotFound, Action: ActionDeny,
				Cause: "repository name not known to registry — the repository does not exist in registry.corp.io (or is hidden from these credentials)",
				Fix:   "correct the image name or tag, or push the image before applying"}}}},
		{name: "not-found digest", ct: Container{Image: "registry.corp.io/team/api@" + digest2.String()},
			res: failing("registry.corp.io/team/api@"+digest2.String(), &registry.Error{Reason: registry.NotFound, Flavour: registry.FlavourDigest, Registry: "registry.corp.io", Message: "manifest unknown"}),
			want: Verdict{Findings: []Finding{{Rule: RuleNotFound, Action: ActionDeny,
				Cause: "manifest unknown — the digest is not in the repository (deleted, or pushed elsewhere)",
				Fix:   "correct the image name or tag, or push the image before applying"}}}},
		{name: "invalid-reference is the kubelet's parser, with no lookup", ct: Container{Image: "team//api:v1"}, lookups: []string{},
			want: Verdict{Findings: []Finding{{Rule: RuleInvalidReference, Action: ActionDeny,
				Cause: `not a valid image reference (invalid reference format); the kubelet would report InvalidImageName`,
				Fix:   "write the image as [registry/]repository[:tag][@sha256:digest], lowercase"}}}},
		{name: "invalid-reference even with Never", ct: Container{Image: "nginx:.bad", PullPolicy: corev1.PullNever}, lookups: []string{},
			want: Verdict{Findings: []Finding{{Rule: RuleInvalidReference, Action: ActionDeny,
				Cause: `not a valid image reference (invalid reference format); the kubelet would report InvalidImageName`,
				Fix:   "write the image as [registry/]repository[:tag][@sha256:digest], lowercase"}}}},
		{name: "Never: no lookup, no pin, no finding", ct: Container{Image: "registry.corp.io/team/api:does-not-exist", PullPolicy: corev1.PullNever},
			pin: true, lookups: []string{}},
		{name: "unauthorized, no pull secrets", ct: Container{Image: api, PullPolicy: corev1.PullAlways},
			res: failing(api, &registry.Error{Reason: registry.Unauthorized, Registry: "registry.corp.io", Status: 401, Message: "authentication required"}),
			want: Verdict{Findings: []Finding{{Rule: RuleUnauthorized, Action: ActionDeny,
				Cause: "authentication required — no imagePullSecrets: the pod references none, so the kubelet pulls anonymously",
				Fix:   "kubectl -n shop create secret docker-registry regcred --docker-server=registry.corp.io ..., then add it to imagePullSecrets"}}}},
		{name: "unauthorized, the service account does not exist", ct: Container{Image: api, PullPolicy: corev1.PullAlways},
			creds: Credentials{ServiceAccount: "ghost", ServiceAccountNotFound: true},
			res:   failing(api, &registry.Error{Reason: registry.Unauthorized, Registry: "registry.corp.io", Status: 401, Message: "authentication required"}),
			want: Verdict{Findings: []Finding{{Rule: RuleUnauthorized, Action: ActionDeny,
				Cause: `authentication required — no imagePullSecrets: the pod lists none and its service account "ghost" was not found, so the kubelet would pull anonymously`,
				Fix:   `create service account "ghost" in namespace "shop" with imagePullSecrets (or include it in the checked manifests), or list the pull secret in the pod's imagePullSecrets`}}}},
		// A Deployment is admitted whether its service account exists or
		// not; its Pods are created once it does, with its pull secrets
		// (kubectl apply -f dir/ creates deployment.yaml before
		// serviceaccount.yaml). Not knowing them is not a denial.
		{name: "unauthorized, a template's service account does not exist yet", kind: "Deployment", ct: Container{Image: api, PullPolicy: corev1.PullAlways},
			creds: Credentials{ServiceAccount: "ghost", ServiceAccountNotFound: true},
			res:   failing(api, &registry.Error{Reason: registry.Unauthorized, Registry: "registry.corp.io", Status: 401, Message: "authentication required"}),
			want: Verdict{Findings: []Finding{{Rule: RuleUnauthorized, Action: ActionWarn,
				Cause: `cannot verify: authentication required and service account "ghost" does not exist yet in namespace "shop"; the pods are created only once it does, with its imagePullSecrets`,
				Fix:   `create service account "ghost" in namespace "shop" with imagePullSecrets (or include it in the checked manifests), or list the pull secret in the pod's imagePullSecrets`}}}},
		// One rule for both of a template's pull-secret sources: a missing
		// secret, like a missing service account, may be created moments
		// later (kubectl apply -f dir/ applies deployment.yaml before
		// secret.yaml); its pods then pull with it. A Pod's stays a denial.
		{name: "unauthorized, a template's pull secret does not exist yet", kind: "Deployment", ct: Container{Image: api, PullPolicy: corev1.PullAlways},
			creds: Credentials{Referenced: []string{"regcred"}, Missing: []string{"regcred"}},
			res:   failing(api, &registry.Error{Reason: registry.Unauthorized, Registry: "registry.corp.io", Message: "authentication required"}),
			want: Verdict{Findings: []Finding{{Rule: RuleUnauthorized, Action: ActionWarn,
				Cause: `cannot verify: authentication required and pull secret(s) "regcred" do not exist yet in namespace "shop"; the pods pull with them once they are created`,
				Fix:   `create the secret in namespace "shop": kubectl -n shop create secret docker-registry regcred --docker-server=registry.corp.io ...`}}}},
		{name: "unauthorized, a template's service account lists a pull secret that does not exist yet", kind: "Deployment", ct: Container{Image: api, PullPolicy: corev1.PullAlways},
			creds: Credentials{Referenced: []string{"regcred"}, Missing: []string{"regcred"}, ServiceAccount: "builder"},
			res:   failing(api, &registry.Error{Reason: registry.Unauthorized, Registry: "registry.corp.io"}),
			want: Verdict{Findings: []Finding{{Rule: RuleUnauthorized, Action: ActionWarn,
				Cause: `cannot verify: unauthorized and pull secret(s) "regcred" do not exist yet in namespace "shop"; the pods pull with them once they are created`,
				Fix:   `create the secret in namespace "shop": kubectl -n shop create secret docker-registry regcred --docker-server=registry.corp.io ...`}}}},
		{name: "dockerhub-anonymous, a template's pull secret does not exist yet (it may hold Docker Hub's)", kind: "Deployment",
			ct:    Container{Image: "bitnami/redis:7", PullPolicy: corev1.PullAlways},
			creds: Credentials{Referenced: []string{"hub"}, Missing: []string{"hub"}},
			res:   found("bitnami/redis:7", img("docker.io/bitnami/redis", "7", digest1), linux("amd64")),
			want: Verdict{Findings: []Finding{{Rule: RuleDockerHubAnonymous, Action: ActionWarn,
				Cause: `cannot verify: pulled from Docker Hub anonymously with the pull secrets at hand, and pull secret(s) "hub" do not exist yet in namespace "shop"; the pods pull with them once they are created`,
				Fix:   "add a docker-registry pull secret for docker.io, configure a Docker Hub mirror, or copy the image to your own registry"}}}},
		// Offline (pullsafe check without a cluster), what the input lacks
		// is unknown: managed by external-secrets, sealed-secrets, ops.
		{name: "unauthorized offline, the pull secret is not in the input", ct: Container{Image: api, PullPolicy: corev1.PullAlways},
			creds: Credentials{Referenced: []string{"regcred"}, Unknown: []string{"regcred"}},
			res:   failing(api, &registry.Error{Reason: registry.Unauthorized, Registry: "registry.corp.io", Message: "authentication required"}),
			want: Verdict{Notes: []string{OfflineNote}, Findings: []Finding{{Rule: RuleUnauthorized, Action: ActionWarn,
				Cause: `cannot verify: authentication required and pull secret(s) "regcred" of namespace "shop" are not in the input and no cluster was asked (checked offline)`,
				Fix:   "check against the cluster (--kubeconfig), or include the pull secret and service account in the checked manifests"}}}},
		{name: "unauthorized offline, the service account is not in the input", ct: Container{Image: api, PullPolicy: corev1.PullAlways},
			creds: Credentials{ServiceAccount: "default", ServiceAccountUnknown: true},
			res:   failing(api, &registry.Error{Reason: registry.Unauthorized, Registry: "registry.corp.io", Message: "authentication required"}),
			want: Verdict{Notes: []string{OfflineNote}, Findings: []Finding{{Rule: RuleUnauthorized, Action: ActionWarn,
				Cause: `cannot verify: authentication required and service account "default" of namespace "shop", whose imagePullSecrets the pods get, is not in the input and no cluster was asked (checked offline)`,
				Fix:   "check against the cluster (--kubeconfig), or include the pull secret and service account in the checked manifests"}}}},
		{name: "offline, a secret in the input for another host still denies", ct: Container{Image: api, PullPolicy: corev1.PullAlways},
			creds: Credentials{Referenced: []string{"regcred"}, Keychain: registry.NewKeychain([]*corev1.Secret{pullSecret("regcred", "registry.corp.io:5000")})},
			res:   failing(api, &registry.Error{Reason: registry.Unauthorized, Registry: "registry.corp.io", Message: "authentication required"}),
			want: Verdict{Findings: []Finding{{Rule: RuleUnauthorized, Action: ActionDeny,
				Cause: `authentication required — pull secret(s) "regcred" hold no credentials for registry.corp.io (shop/regcred holds registry.corp.io:5000; host and port must match exactly)`,
				Fix:   `add an entry for "registry.corp.io" to the pull secret`}}}},
		{name: "unauthorized, secret missing from the namespace", ct: Container{Image: api, PullPolicy: corev1.PullAlways},
			creds: Credentials{Referenced: []string{"regcred"}, Missing: []string{"regcred"}, ServiceAccount: "builder"},
			res:   failing(api, &registry.Error{Reason: registry.Unauthorized, Registry: "registry.corp.io"}),
			want: Verdict{Findings: []Finding{{Rule: RuleUnauthorized, Action: ActionDeny,
				Cause: `unauthorized — pull secret(s) "regcred" referenced by service account "builder" do not exist in namespace "shop" (secrets do not cross namespaces)`,
				Fix:   `create the secret in namespace "shop": kubectl -n shop create secret docker-registry regcred --docker-server=registry.corp.io ...`}}}},
		{name: "unauthorized, secret for another port", ct: Container{Image: api, PullPolicy: corev1.PullAlways},
			creds: Credentials{Referenced: []string{"regcred"}, Keychain: registry.NewKeychain([]*corev1.Secret{pullSecret("regcred", "registry.corp.io:5000")})},
			res:   failing(api, &registry.Error{Reason: registry.Unauthorized, Registry: "registry.corp.io", Message: "authentication required"}),
			want: Verdict{Findings: []Finding{{Rule: RuleUnauthorized, Action: ActionDeny,
				Cause: `authentication required — pull secret(s) "regcred" hold no credentials for registry.corp.io (shop/regcred holds registry.corp.io:5000; host and port must match exactly)`,
				Fix:   `add an entry for "registry.corp.io" to the pull secret`}}}},
		{name: "unauthorized, credentials rejected", ct: Container{Image: api, PullPolicy: corev1.PullAlways},
			creds: Credentials{Referenced: []string{"regcred"}},
			res: failing(api, &registry.Error{Reason: registry.Unauthorized, Registry: "registry.corp.io", Message: "invalid username/password",
				Tried: []string{`shop/regcred (key "registry.corp.io")`}}),
			want: Verdict{Findings: []Finding{{Rule: RuleUnauthorized, Action: ActionDeny,
				Cause: `invalid username/password — registry registry.corp.io rejected the credentials of shop/regcred (key "registry.corp.io")`,
				Fix:   "renew the credentials in the secret (expired token or password?) and check the account may pull this repository"}}}},
		{name: "unauthorized where nodes hold the credentials (normalised host)", cfg: func(c *Config) { c.Registries.NodeCredentials = []string{"docker.io"} },
			ct:    Container{Image: "team/private:v1", PullPolicy: corev1.PullAlways},
			creds: Credentials{Keychain: registry.NewKeychain([]*corev1.Secret{pullSecret("hub", "docker.io")})},
			res:   failing("team/private:v1", &registry.Error{Reason: registry.Unauthorized, Registry: "index.docker.io"}),
			want: Verdict{Findings: []Finding{{Rule: RuleUnauthorized, Action: ActionWarn,
				Cause: "cannot verify: nodes pull from docker.io with their own credentials (registries.nodeCredentials); pullsafe does not"}}}},
		// Credential provider plugins (registry/credprovider.go): a host a
		// provider covers is checked for real. Where nodeCredentials also
		// names it, the kubelet tries the node's own credentials (its node
		// keyring comes before the providers'), which pullsafe has not: a
		// refusal proves nothing.
		{name: "unauthorized, the credential provider returned nothing, the nodes have credentials of their own", cfg: func(c *Config) { c.Registries.NodeCredentials = []string{"registry.corp.io"} },
			ct: Container{Image: api, PullPolicy: corev1.PullAlways},
			res: failing(api, &registry.Error{Reason: registry.Unauthorized, Registry: "registry.corp.io", Message: "authentication required",
				Providers: []registry.ProviderOutcome{{Provider: "ecr-credential-provider", ServiceAccount: "shop/default"}}}),
			want: Verdict{Findings: []Finding{{Rule: RuleUnauthorized, Action: ActionWarn,
				Cause: "cannot verify: nodes pull from registry.corp.io with their own credentials (registries.nodeCredentials); pullsafe does not; credential provider ecr-credential-provider returned no credentials for service account shop/default"}}}},
		{name: "unauthorized, the credential provider returned nothing for the service account",
			ct: Container{Image: api, PullPolicy: corev1.PullAlways},
			res: failing(api, &registry.Error{Reason: registry.Unauthorized, Registry: "registry.corp.io", Message: "authentication required",
				Providers: []registry.ProviderOutcome{{Provider: "ecr-credential-provider", ServiceAccount: "shop/default"}}}),
			want: Verdict{Findings: []Finding{{Rule: RuleUnauthorized, Action: ActionDeny,
				Cause: "authentication required — no imagePullSecrets: the pod references none, so the kubelet pulls anonymously; credential provider ecr-credential-provider returned no credentials for service account shop/default",
				Fix:   "let the credential provider's identity for this service account pull the repository (for ECR, the IAM role in eks.amazonaws.com/ecr-role-arn), or run the pods under a service account that may; kubectl -n shop create secret docker-registry regcred --docker-server=registry.corp.io ..., then add it to imagePullSecrets"}}}},
		{name: "credential provider could not be run", ct: Container{Image: api, PullPolicy: corev1.PullAlways},
			res: failing(api, &registry.Error{Reason: registry.Unreachable, Flavour: registry.FlavourProvider, Registry: "registry.corp.io",
				Message: "credential provider ecr-credential-provider did not answer within 2s (the lookup deadline) and was stopped"}),
			want: Verdict{Findings: []Finding{{Rule: RuleUnreachable, Action: ActionWarn,
				Cause: "cannot verify: credential provider ecr-credential-provider did not answer within 2s (the lookup deadline) and was stopped",
				Fix:   providerFix}}}},
		{name: "broken pull secret", ct: Container{Image: api, PullPolicy: corev1.PullAlways}, lookups: []string{},
			creds: Credentials{Referenced: []string{"bad"}, Keychain: registry.NewKeychain([]*corev1.Secret{{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "bad"},
				Type: corev1.SecretTypeDockerConfigJson, Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths":`)}}})},
			want: Verdict{Findings: []Finding{{Rule: RuleUnauthorized, Action: ActionDeny,
				Cause: "pull secret shop/bad is broken (.dockerconfigjson: invalid JSON: unexpected end of JSON input); the kubelet fails every pull that references it",
				Fix:   "fix the secret's data (kubectl create secret docker-registry ... --dry-run=client -o yaml) or remove it from imagePullSecrets"}}}},
		{name: "rate-limited", ct: Container{Image: api, PullPolicy: corev1.PullAlways},
			res: failing(api, &registry.Error{Reason: registry.RateLimited, Registry: "registry.corp.io", Message: "toomanyrequests", RetryAfter: time.Minute}),
			want: Verdict{Findings: []Finding{{Rule: RuleRateLimited, Action: ActionWarn,
				Cause: "registry registry.corp.io is rate limiting pulls (toomanyrequests); pulls are likely to fail now",
				Fix:   "authenticate pulls with a pull secret, use a mirror, or retry after 1m0s"}}}},
		{name: "unreachable", ct: Container{Image: api, PullPolicy: corev1.PullAlways},
			res: failing(api, &registry.Error{Reason: registry.Unreachable, Flavour: registry.FlavourDNS, Registry: "registry.corp.io", Message: "no such host"}),
			want: Verdict{Findings: []Finding{{Rule: RuleUnreachable, Action: ActionWarn,
				Cause: "cannot verify: registry registry.corp.io unreachable (dns: no such host)",
				Fix:   "check the registry, DNS and egress from the nodes; pullsafe allowed it unchecked"}}}},
		{name: "unreachable in enforce with deny configured", cfg: func(c *Config) { c.Rules[RuleUnreachable] = ActionDeny },
			ct:  Container{Image: api, PullPolicy: corev1.PullAlways},
			res: failing(api, &registry.Error{Reason: registry.Unreachable, Flavour: registry.FlavourTimeout, Registry: "registry.corp.io", Message: "i/o timeout"}),
			want: Verdict{Findings: []Finding{{Rule: RuleUnreachable, Action: ActionDeny,
				Cause: "cannot verify: registry registry.corp.io unreachable (timeout: i/o timeout)",
				Fix:   "check the registry, DNS and egress from the nodes; pullsafe allowed it unchecked"}}}},
		{name: "valid for the kubelet, not checkable by pullsafe", ct: Container{Image: api, PullPolicy: corev1.PullAlways},
			res: failing(api, &registry.Error{Reason: registry.Unreachable, Flavour: registry.FlavourUnsupported, Message: "valid for the kubelet but not checkable by pullsafe: unsupported hash"}),
			want: Verdict{Findings: []Finding{{Rule: RuleUnreachable, Action: ActionWarn,
				Cause: "cannot verify registry.corp.io/team/api:v1: valid for the kubelet but not checkable by pullsafe: unsupported hash"}}}},
		{name: "internal", ct: Container{Image: api, PullPolicy: corev1.PullAlways}, res: failing(api, errors.New("boom")),
			want: Verdict{Findings: []Finding{{Rule: RuleInternal, Action: ActionWarn, Cause: "lookup failed: boom; allowed unchecked"}}}},
		{name: "dockerhub-anonymous", ct: Container{Image: "bitnami/redis:7", PullPolicy: corev1.PullAlways},
			res: found("bitnami/redis:7", img("docker.io/bitnami/redis", "7", digest1), linux("amd64")),
			want: Verdict{Findings: []Finding{{Rule: RuleDockerHubAnonymous, Action: ActionDeny,
				Cause: "pulled from Docker Hub anonymously: anonymous pulls share one IP's rate limit and fail fleet-wide with toomanyrequests",
				Fix:   "add a docker-registry pull secret for docker.io, configure a Docker Hub mirror, or copy the image to your own registry"}}}},
		{name: "dockerhub-anonymous spelled index.docker.io, lookup failed", ct: Container{Image: "index.docker.io/bitnami/redis:7", PullPolicy: corev1.PullAlways},
			res: failing("index.docker.io/bitnami/redis:7", &registry.Error{Reason: registry.Unreachable, Flavour: registry.FlavourRefused, Registry: "index.docker.io", Message: "connection refused"}),
			want: Verdict{Findings: []Finding{
				{Rule: RuleUnreachable, Action: ActionWarn, Cause: "cannot verify: registry index.docker.io unreachable (refused: connection refused)",
					Fix: "check the registry, DNS and egress from the nodes; pullsafe allowed it unchecked"},
				{Rule: RuleDockerHubAnonymous, Action: ActionDeny,
					Cause: "pulled from Docker Hub anonymously: anonymous pulls share one IP's rate limit and fail fleet-wide with toomanyrequests",
					Fix:   "add a docker-registry pull secret for docker.io, configure a Docker Hub mirror, or copy the image to your own registry"}}}},
		// A credential provider matching docker.io gives the kubelet
		// credentials, or may (pullsafe could not run it): the pull is not
		// known to be anonymous, so dockerhub-anonymous does not fire.
		{name: "dockerhub, the credential provider could not be run", ct: Container{Image: "bitnami/redis:7", PullPolicy: corev1.PullAlways},
			res: failing("bitnami/redis:7", &registry.Error{Reason: registry.Unreachable, Flavour: registry.FlavourProvider, Registry: "index.docker.io",
				Message:   "credential provider hub failed: exit status 1",
				Providers: []registry.ProviderOutcome{{Provider: "hub", Problem: "credential provider hub failed: exit status 1"}}}),
			want: Verdict{Findings: []Finding{{Rule: RuleUnreachable, Action: ActionWarn,
				Cause: "cannot verify: credential provider hub failed: exit status 1", Fix: providerFix}}}},
		{name: "dockerhub unreachable, a credential provider gave credentials", ct: Container{Image: "bitnami/redis:7", PullPolicy: corev1.PullAlways},
			res: failing("bitnami/redis:7", &registry.Error{Reason: registry.Unreachable, Flavour: registry.FlavourRefused, Registry: "index.docker.io",
				Message: "connection refused", Providers: []registry.ProviderOutcome{{Provider: "hub", Credentials: 1}}}),
			want: Verdict{Findings: []Finding{{Rule: RuleUnreachable, Action: ActionWarn, Cause: "cannot verify: registry index.docker.io unreachable (refused: connection refused)",
				Fix: "check the registry, DNS and egress from the nodes; pullsafe allowed it unchecked"}}}},
		{name: "dockerhub found anonymously, the credential provider could not be run", ct: Container{Image: "bitnami/redis:7", PullPolicy: corev1.PullAlways},
			res: found("bitnami/redis:7", func() *registry.Image {
				i := img("docker.io/bitnami/redis", "7", digest1)
				i.Providers = []registry.ProviderOutcome{{Provider: "hub", Problem: "credential provider hub failed: exit status 1"}}
				return i
			}(), linux("amd64"))},
		{name: "dockerhub found anonymously, the credential provider gave nothing", ct: Container{Image: "bitnami/redis:7", PullPolicy: corev1.PullAlways},
			res: found("bitnami/redis:7", func() *registry.Image {
				i := img("docker.io/bitnami/redis", "7", digest1)
				i.Providers = []registry.ProviderOutcome{{Provider: "hub"}}
				return i
			}(), linux("amd64")),
			want: Verdict{Findings: []Finding{{Rule: RuleDockerHubAnonymous, Action: ActionDeny,
				Cause: "pulled from Docker Hub anonymously: anonymous pulls share one IP's rate limit and fail fleet-wide with toomanyrequests",
				Fix:   "add a docker-registry pull secret for docker.io, configure a Docker Hub mirror, or copy the image to your own registry"}}}},
		{name: "mutable-tag, defaulted IfNotPresent: the fix is the one Settings gave", ct: Container{Image: api}, res: ok,
			pinFix: "pin the digest, or label the namespace pullsafe.io/pin=true",
			want: Verdict{Findings: []Finding{{Rule: RuleMutableTag, Action: ActionWarn,
				Cause: `mutable tag "v1" with imagePullPolicy IfNotPresent: nodes may run different bits (now sha256:111111111111…)`,
				Fix:   "pin the digest, or label the namespace pullsafe.io/pin=true"}}}},
		{name: "no mutable-tag for latest: defaulted Always", ct: Container{Image: "registry.corp.io/team/api"},
			res: found("registry.corp.io/team/api", img("registry.corp.io/team/api", "latest", digest1), linux("amd64"))},
		{name: "platform, no node can run it", ct: Container{Image: api, PullPolicy: corev1.PullAlways},
			res: found(api, img("registry.corp.io/team/api", "v1", digest1), linux("arm64")),
			want: Verdict{Findings: []Finding{{Rule: RulePlatform, Action: ActionDeny,
				Cause: "offers linux/arm64 only; no node it may run on can run it (nodes: 2 linux/amd64)",
				Fix:   "build a multi-arch image (docker buildx build --platform linux/amd64,linux/arm64) or use one that offers the nodes' platform"}}}},
		{name: "platform, some nodes: suggest an arch both have, not platforms[0]", ct: Container{Image: api, PullPolicy: corev1.PullAlways},
			nodes: []Node{node("a", "amd64"), node("r", "arm64")},
			res:   found(api, img("registry.corp.io/team/api", "v1", digest1), linux("s390x"), linux("arm64")),
			want: Verdict{Findings: []Finding{{Rule: RulePlatform, Action: ActionWarn,
				Cause: "offers linux/arm64, linux/s390x only; 1 of 2 eligible nodes (1 linux/amd64) cannot run it",
				Fix:   "add nodeSelector kubernetes.io/arch: arm64"}}}},
		{name: "platform, some nodes of several arches", ct: Container{Image: api, PullPolicy: corev1.PullAlways},
			nodes: []Node{node("a", "amd64"), node("r", "arm64"), node("z", "s390x")},
			res:   found(api, img("registry.corp.io/team/api", "v1", digest1), linux("amd64"), linux("arm64")),
			want: Verdict{Findings: []Finding{{Rule: RulePlatform, Action: ActionWarn,
				Cause: "offers linux/amd64, linux/arm64 only; 1 of 3 eligible nodes (1 linux/s390x) cannot run it",
				Fix:   "add required node affinity kubernetes.io/arch In (amd64, arm64)"}}}},
		{name: "platform, only nodes the selector allows count", ct: Container{Image: api, PullPolicy: corev1.PullAlways},
			spec:  corev1.PodSpec{NodeSelector: map[string]string{corev1.LabelArchStable: "amd64"}},
			nodes: []Node{node("a", "amd64"), node("r", "arm64")},
			res:   found(api, img("registry.corp.io/team/api", "v1", digest1), linux("amd64"))},
		{name: "platform, an artifact states no platform", ct: Container{Image: api, PullPolicy: corev1.PullAlways},
			res: found(api, img("registry.corp.io/team/api", "v1", digest1), v1.Platform{})},
		{name: "platform, index entries state no platform, or only an attestation's", ct: Container{Image: api, PullPolicy: corev1.PullAlways},
			res: found(api, img("registry.corp.io/team/api", "v1", digest1), v1.Platform{}, v1.Platform{OS: "unknown", Architecture: "unknown"})},
		{name: "platform, variant unknown on nodes", ct: Container{Image: api, PullPolicy: corev1.PullAlways},
			nodes: []Node{node("r", "arm"), node("s", "arm", "kubernetes.io/arch-variant", "v6")},
			res:   found(api, img("registry.corp.io/team/api", "v1", digest1), v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"})},
		{name: "platform cannot be read", ct: Container{Image: api, PullPolicy: corev1.PullAlways},
			res:  fakeResolver{images: map[string]*registry.Image{api: img("registry.corp.io/team/api", "v1", digest1)}, platErr: errors.New("config blob too large")},
			want: Verdict{Findings: []Finding{{Rule: RuleUnreachable, Action: ActionWarn, Cause: "cannot verify platforms: config blob too large"}}}},
		{name: "platform, nodes unknown", ct: Container{Image: api, PullPolicy: corev1.PullAlways}, nodes: []Node{}, res: ok,
			want: Verdict{Notes: []string{"platform not checked: the cluster has no nodes yet"}}},
		{name: "schema 1 where every eligible node runs containerd 2.1", ct: Container{Image: api, PullPolicy: corev1.PullAlways},
			nodes: []Node{{Name: "a", Labels: node("a", "amd64").Labels, Runtime: "containerd://2.1.4"}},
			res: fakeResolver{images: map[string]*registry.Image{api: {Repository: "registry.corp.io/team/api", Tag: "v1", Digest: digest1,
				MediaType: "application/vnd.docker.distribution.manifest.v1+prettyjws"}}},
			want: Verdict{Findings: []Finding{{Rule: RulePlatform, Action: ActionDeny,
				Cause: `the registry serves a Docker schema 1 manifest (application/vnd.docker.distribution.manifest.v1+prettyjws); containerd 2 refuses it by default, 2.1 and later always: "schema 1 image manifests are no longer supported"; all 1 eligible nodes run containerd 2.1 or later`,
				Fix:   "rebuild and push the image with a current builder (docker buildx, or pull and push it with Docker 20+), or use a newer tag"}}}},
		{name: "schema 1 where nodes run containerd 1.7: a warning", ct: Container{Image: api, PullPolicy: corev1.PullAlways},
			nodes: []Node{{Name: "a", Labels: node("a", "amd64").Labels, Runtime: "containerd://1.7.27"}},
			res: fakeResolver{images: map[string]*registry.Image{api: {Repository: "registry.corp.io/team/api", Tag: "v1", Digest: digest1,
				MediaType: "application/vnd.docker.distribution.manifest.v1+json"}}},
			want: Verdict{Findings: []Finding{{Rule: RulePlatform, Action: ActionWarn,
				Cause: `the registry serves a Docker schema 1 manifest (application/vnd.docker.distribution.manifest.v1+json); containerd 2 refuses it by default, 2.1 and later always: "schema 1 image manifests are no longer supported"`,
				Fix:   "rebuild and push the image with a current builder (docker buildx, or pull and push it with Docker 20+), or use a newer tag"}}}},
		{name: "schema 1 where nodes run containerd 2.0 (re-enabled by an env var pullsafe cannot see): a warning", ct: Container{Image: api, PullPolicy: corev1.PullAlways},
			nodes: []Node{{Name: "a", Labels: node("a", "amd64").Labels, Runtime: "containerd://2.0.5"}},
			res: fakeResolver{images: map[string]*registry.Image{api: {Repository: "registry.corp.io/team/api", Tag: "v1", Digest: digest1,
				MediaType: "application/vnd.docker.distribution.manifest.v1+json"}}},
			want: Verdict{Findings: []Finding{{Rule: RulePlatform, Action: ActionWarn,
				Cause: `the registry serves a Docker schema 1 manifest (application/vnd.docker.distribution.manifest.v1+json); containerd 2 refuses it by default, 2.1 and later always: "schema 1 image manifests are no longer supported"`,
				Fix:   "rebuild and push the image with a current builder (docker buildx, or pull and push it with Docker 20+), or use a newer tag"}}}},
		{name: "Docker Hub with node credentials is not anonymous", cfg: func(c *Config) { c.Registries.NodeCredentials = []string{"docker.io"} },
			ct:  Container{Image: "nginx:1.27", PullPolicy: corev1.PullAlways},
			res: found("nginx:1.27", img("docker.io/library/nginx", "1.27", digest1), linux("amd64"))},
		{name: "skip matches the normalised name", cfg: func(c *Config) { c.Registries.Skip = []string{"docker.io/library/*"} },
			ct: Container{Image: "nginx:1.27"}, lookups: []string{}},
		{name: "warn mode turns denials into warnings", mode: ModeWarn, ct: Container{Image: "registry.corp.io/team/api:v9", PullPolicy: corev1.PullAlways},
			want: Verdict{Findings: []Finding{{Rule: RuleNotFound, Action: ActionWarn,
				Cause: "manifest unknown — the tag does not exist in registry.corp.io/team/api",
				Fix:   "correct the image name or tag, or push the image before applying"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.run)
	}
}
