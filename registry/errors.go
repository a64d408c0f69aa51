package registry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Reason is why a lookup failed, named by the rule ids of pullsafe's policy.
type Reason string

const (
	NotFound         Reason = "not-found"
	Unauthorized     Reason = "unauthorized"
	InvalidReference Reason = "invalid-reference"
	Unreachable      Reason = "unreachable"
	RateLimited      Reason = "rate-limited"
)

// Flavours of Unreachable and NotFound: what exactly went wrong.
const (
	FlavourDNS         = "dns"                 // no such host
	FlavourTimeout     = "timeout"             // deadline or i/o timeout
	FlavourRefused     = "refused"             // connection refused
	FlavourTLS         = "tls"                 // certificate or handshake failure
	FlavourServerError = "server-error"        // 5xx or an unexpected status
	FlavourBlocked     = "blocked"             // address on the network deny list
	FlavourBadResponse = "bad-response"        // oversized or unparsable body
	FlavourNetwork     = "network"             // any other transport failure
	FlavourMirrorAuth  = "mirror-auth"         // a mirror refused pullsafe's anonymous request
	FlavourProvider    = "credential-provider" // a credential provider's answer is unknown
	// FlavourDigestMismatch: bytes the registry served hash to another
	// digest than the one it gave for them. That digest is never pinned:
	// the kubelet's pull by it would fail or fetch other bytes.
	FlavourDigestMismatch = "digest-mismatch"

	FlavourTag        = "tag"        // the repository exists, the tag does not
	FlavourRepository = "repository" // NAME_UNKNOWN, or no tags at all
	FlavourDigest     = "digest"     // a pinned digest is not in the repository
	FlavourNoHosts    = "no-hosts"   // hosts.toml leaves no host that may serve the lookup
)

// maxMessage caps the registry's own words quoted in an Error.
const maxMessage = 160

// Error is a classified lookup failure. Its text is for a person: what the
// registry said (sanitized and short), what was tried, what exists instead.
type Error struct {
	Reason  Reason
	Flavour string
	// Image is the reference as the caller wrote it; Registry the host that
	// answered (a mirror's host where a mirror was used).
	Image    string
	Registry string
	Status   int    // HTTP status, 0 where no response came back
	Message  string // the registry's own words, sanitized, at most maxMessage bytes
	// Tried lists the credentials used, as "namespace/name (key "host")";
	// empty for an anonymous lookup. Never holds secret values.
	Tried       []string
	Suggestions []string      // nearest existing tags, for NotFound on a tag
	RetryAfter  time.Duration // for RateLimited
	Err         error         // the underlying error, for errors.Is/As
	// Providers are the credential providers that matched the image and
	// what each gave (credprovider.go).
	Providers []ProviderOutcome
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s", e.Reason, e.Image)
	if e.Flavour != "" {
		fmt.Fprintf(&b, " (%s)", e.Flavour)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	if e.Registry != "" {
		fmt.Fprintf(&b, " [registry %s]", e.Registry)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Transient reports whether the failure may go away by itself; such answers
// are never cached.
func (e *Error) Transient() bool { return e.Reason == Unreachable || e.Reason == RateLimited }

// ReasonOf returns the Reason of a classified error, or Unreachable for any
// other non-nil error (an unknown failure is treated as "cannot verify").
func ReasonOf(err error) Reason {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return Unreachable
}

// Caps of a cached answer: every string a registry or a user chose is cut,
// so one entry of the not-found cache (10,000 of them) holds at most
// maxCachedError bytes, whatever the registry sent.
const (
	maxCachedError = 2 << 10
	maxCachedHost  = 256 // a DNS name is at most 253 bytes, plus a port
	maxCachedField = 32  // Flavour: one of pullsafe's own words
)

// cacheable is the copy of e a cache or window may hold: classified fields
// only, each capped. No wrapped error (a transport error keeps the request,
// its credentials and the registry's body), no image (each caller sets its
// own), no list of credentials tried.
func (e *Error) cacheable() *Error {
	c := &Error{Reason: e.Reason, Flavour: truncate(e.Flavour, maxCachedField), Registry: truncate(e.Registry, maxCachedHost),
		Status: e.Status, Message: truncate(e.Message, maxMessage+len("…")), RetryAfter: e.RetryAfter}
	for _, s := range e.Suggestions[:min(len(e.Suggestions), maxSuggestions)] {
		c.Suggestions = append(c.Suggestions, truncate(s, maxSuggestedTag))
	}
	return c
}

// truncate cuts s to at most n bytes, on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// classify turns any failure of one registry call into an *Error.
func classify(err error, image, host string) *Error {
	if err == nil {
		// No caller should get here; if one does, "cannot verify" is the
		// answer that can do no harm, not a crash.
		return &Error{Image: image, Registry: host, Reason: Unreachable, Flavour: FlavourInternal,
			Message: "internal error in pullsafe's lookup (a failure without an error)"}
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	out := &Error{Image: image, Registry: host, Err: err, Reason: Unreachable}
	var (
		terr *transport.Error
		perr *panicError
	)
	switch {
	case errors.As(err, &perr):
		out.Flavour, out.Message = FlavourInternal, sanitize(fmt.Sprintf("internal error in pullsafe's lookup (panic: %v)", perr.value))
	case errors.As(err, &terr):
		classifyStatus(out, terr.StatusCode, terr.Errors)
		if out.Message == "" {
			out.Message = sanitize(http.StatusText(terr.StatusCode))
		}
		// Not kept: the transport error holds the request (its
		// Authorization header, its context) and up to 64 KiB of the
		// registry's body; Status and Message say all a verdict uses, and
		// this answer may be cached or remembered in a window.
		out.Err = nil
	case isHeaderOverflow(err):
		out.Flavour = FlavourBadResponse
		out.Message = fmt.Sprintf("response headers larger than the %d KiB pullsafe reads", maxResponseHeader>>10)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled), isTimeout(err):
		out.Flavour, out.Message = FlavourTimeout, "no answer before the lookup deadline"
	case errors.Is(err, errBlocked):
		out.Flavour, out.Message = FlavourBlocked, sanitize(blockedMessage(err))
	case isDNS(err):
		out.Flavour, out.Message = FlavourDNS, "no such host"
	case errors.Is(err, syscall.ECONNREFUSED):
		out.Flavour, out.Message = FlavourRefused, "connection refused"
	case isTLS(err):
		out.Flavour, out.Message = FlavourTLS, sanitize(tlsMessage(err))
	default:
		out.Flavour, out.Message = FlavourNetwork, sanitize(err.Error())
	}
	return out
}

// classifyStatus maps an HTTP status and the registry's error codes
// (distribution spec) to a Reason. Codes win over status: some registries
// answer 404 for a repository the caller may not see, with code DENIED.
func classifyStatus(out *Error, status int, diags []transport.Diagnostic) {
	out.Status = status
	var msgs []string
	code := ""
	for _, d := range diags {
		if code == "" {
			code = string(d.Code)
		}
		if d.Message != "" {
			msgs = append(msgs, d.Message)
		} else {
			msgs = append(msgs, strings.ToLower(strings.ReplaceAll(string(d.Code), "_", " ")))
		}
	}
	out.Message = sanitize(strings.Join(msgs, "; "))
	switch {
	case code == string(transport.ManifestUnknownErrorCode) || code == "TAG_UNKNOWN":
		out.Reason, out.Flavour = NotFound, FlavourTag
	case code == string(transport.NameUnknownErrorCode):
		out.Reason, out.Flavour = NotFound, FlavourRepository
	case code == string(transport.UnauthorizedErrorCode) || code == string(transport.DeniedErrorCode):
		out.Reason = Unauthorized
	case code == string(transport.TooManyRequestsErrorCode) || status == http.StatusTooManyRequests:
		out.Reason = RateLimited
	case status == http.StatusNotFound:
		out.Reason, out.Flavour = NotFound, FlavourTag
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		out.Reason = Unauthorized
	default:
		out.Reason, out.Flavour = Unreachable, FlavourServerError
	}
}

// isHeaderOverflow reports net/http's refusal of a response whose headers
// pass the transport's MaxResponseHeaderBytes (it has no error type).
func isHeaderOverflow(err error) bool {
	return strings.Contains(err.Error(), "server response headers exceeded")
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func isDNS(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && !de.IsTimeout
}

func isTLS(err error) bool {
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		verify   *tls.CertificateVerificationError
		record   tls.RecordHeaderError
		alert    tls.AlertError
	)
	return errors.As(err, &unknown) || errors.As(err, &hostname) || errors.As(err, &invalid) ||
		errors.As(err, &verify) || errors.As(err, &record) || errors.As(err, &alert) ||
		strings.Contains(err.Error(), "tls: ")
}

func tlsMessage(err error) string {
	var unknown x509.UnknownAuthorityError
	var record tls.RecordHeaderError
	switch {
	case errors.As(err, &unknown):
		return "TLS: certificate signed by unknown authority (add the registry's CA to registries.caBundles)"
	case errors.As(err, &record):
		return "TLS: the registry does not speak HTTPS (list it in registries.insecure if it is plain HTTP)"
	}
	var hostname x509.HostnameError
	if errors.As(err, &hostname) {
		return "TLS: " + hostname.Error()
	}
	return "TLS: " + err.Error()
}

// sanitize keeps a registry's words safe to put in an admission message:
// printable, one line, short. Registries are untrusted and may send anything.
func sanitize(s string) string { return Sanitize(s, maxMessage) }
