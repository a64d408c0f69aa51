package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	credentialprovider "k8s.io/kubelet/pkg/apis/credentialprovider/v1"
	sigsjson "sigs.k8s.io/json"
)

// providerRequest is what one plugin run is asked.
type providerRequest struct {
	image       string
	token       string
	annotations map[string]string
}

// providerResponse is a decoded CredentialProviderResponse.
type providerResponse struct {
	cacheKeyType  string
	cacheDuration *time.Duration
	auth          map[string]dockerConfigEntry
}

// run execs the plugin as the kubelet's execPlugin does:
//
//	$ ENV=VALUE <bin-dir>/<name> args... <<<request
//
// with the process's environment followed by the config's env (later
// entries win), the request on stdin and the response read from stdout.
// The plugin and its children are killed when ctx ends (killGroup); a
// child that keeps its stdout open does not hold the lookup past WaitDelay.
func (p *credentialProvider) run(ctx context.Context, req providerRequest, timeout time.Duration) (*providerResponse, error) {
	bin, err := p.lookPlugin()
	if err != nil {
		return nil, err
	}
	in, err := json.Marshal(credentialprovider.CredentialProviderRequest{
		TypeMeta: typeMeta(p.apiVersion, "CredentialProviderRequest"),
		Image:    req.image, ServiceAccountToken: req.token, ServiceAccountAnnotations: req.annotations,
	})
	if err != nil {
		return nil, fmt.Errorf("credential provider %s: encoding the request: %w", p.name, err)
	}
	stdout := &cappedBuffer{max: maxProviderOutput}
	stderr := &cappedBuffer{max: 4 << 10, truncate: true}
	cmd := exec.CommandContext(ctx, bin, p.args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(in), stdout, stderr
	cmd.Env = append(p.environ(), p.env...)
	cmd.WaitDelay = 100 * time.Millisecond
	killGroup(cmd)
	err = cmd.Run()
	switch {
	case ctx.Err() != nil:
		return nil, fmt.Errorf("credential provider %s did not answer within %s (the lookup deadline) and was stopped", p.name, timeout)
	case stdout.over:
		return nil, fmt.Errorf("credential provider %s printed more than %d bytes; its answer was not read", p.name, maxProviderOutput)
	case err != nil:
		return nil, fmt.Errorf("credential provider %s failed: %s%s", p.name, Sanitize(err.Error(), maxMessage), p.stderrNote(stderr.String(), req.token))
	}
	resp, err := parseProviderResponse(stdout.Bytes(), p.apiVersion)
	if err != nil {
		return nil, fmt.Errorf("credential provider %s printed no valid CredentialProviderResponse: %w", p.name, err)
	}
	return resp, nil
}

// stderrNote quotes the plugin's own words, unless they hold the token it
// was given.
func (p *credentialProvider) stderrNote(stderr, token string) string {
	if stderr = strings.TrimSpace(stderr); stderr == "" || token != "" && strings.Contains(stderr, token) {
		return ""
	}
	return " (" + Sanitize(stderr, maxMessage) + ")"
}

func typeMeta(apiVersion, kind string) metav1.TypeMeta {
	return metav1.TypeMeta{Kind: kind, APIVersion: apiVersion}
}

// parseProviderResponse decodes a plugin's stdout as the kubelet does: its
// apiVersion must be the one the provider is configured with, its kind
// CredentialProviderResponse, its fields known (strict, case-sensitive
// decoding), its cacheKeyType one of Image, Registry, Global. The error
// never quotes the response: it may hold credentials.
func parseProviderResponse(data []byte, apiVersion string) (*providerResponse, error) {
	if len(data) > maxProviderOutput {
		return nil, fmt.Errorf("more than %d bytes", maxProviderOutput)
	}
	var tm struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := json.Unmarshal(data, &tm); err != nil {
		return nil, errors.New("not a JSON object with apiVersion and kind")
	}
	gv, err := schema.ParseGroupVersion(tm.APIVersion)
	if err != nil {
		return nil, fmt.Errorf("apiVersion is not group/version")
	}
	if gv.String() != apiVersion {
		return nil, fmt.Errorf("apiVersion %q, not the configured %q", Sanitize(gv.String(), 80), apiVersion)
	}
	if tm.Kind != "CredentialProviderResponse" {
		return nil, fmt.Errorf("kind %q, not CredentialProviderResponse", Sanitize(tm.Kind, 80))
	}
	var r credentialprovider.CredentialProviderResponse
	strict, err := sigsjson.UnmarshalStrict(data, &r)
	if err != nil {
		return nil, errors.New("not a CredentialProviderResponse")
	}
	if len(strict) > 0 {
		return nil, errors.New("unknown or duplicate fields")
	}
	switch r.CacheKeyType {
	case credentialprovider.ImagePluginCacheKeyType, credentialprovider.RegistryPluginCacheKeyType, credentialprovider.GlobalPluginCacheKeyType:
	default:
		return nil, fmt.Errorf("cacheKeyType %q is not Image, Registry or Global", Sanitize(string(r.CacheKeyType), 40))
	}
	out := &providerResponse{cacheKeyType: string(r.CacheKeyType), auth: make(map[string]dockerConfigEntry, len(r.Auth))}
	if r.CacheDuration != nil {
		d := r.CacheDuration.Duration
		out.cacheDuration = &d
	}
	for k, a := range r.Auth {
		out.auth[k] = dockerConfigEntry{Username: a.Username, Password: a.Password}
	}
	return out, nil
}

// cappedBuffer keeps at most max bytes. Past that it refuses the write, so
// a plugin printing without end is cut off (its stdout pipe closes), or,
// with truncate, drops the rest and lets the plugin finish.
// It embeds no bytes.Buffer: io.Copy would use the buffer's ReadFrom and
// read without bound.
type cappedBuffer struct {
	buf      bytes.Buffer
	max      int
	truncate bool
	over     bool
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	room := b.max - b.buf.Len()
	if len(p) <= room {
		return b.buf.Write(p)
	}
	b.over = true
	b.buf.Write(p[:max(room, 0)])
	if b.truncate {
		return len(p), nil
	}
	return 0, errors.New("output too large")
}

func (b *cappedBuffer) Bytes() []byte  { return b.buf.Bytes() }
func (b *cappedBuffer) String() string { return b.buf.String() }
