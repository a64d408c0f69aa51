package registry

import (
	"fmt"
	"net/http"
	"runtime/debug"
)

// FlavourInternal is a fault inside pullsafe (a panic during a lookup),
// answered like an outage: cannot verify, allowed with a warning.
const FlavourInternal = "internal"

// contained runs f, turning a panic into the fail-open answer. Lookups run in
// singleflight.DoChan, which re-panics a flight's panic in a goroutine of its
// own where no recover (the webhook's included) can reach it: left alone, a
// panic in one lookup would kill the process and every review in flight.
func contained(image, host string, f func() (any, error)) func() (any, error) {
	return func() (v any, err error) {
		defer func() {
			if p := recover(); p != nil {
				v, err = nil, &Error{Reason: Unreachable, Flavour: FlavourInternal, Image: image, Registry: host,
					Message: sanitize(fmt.Sprintf("internal error in pullsafe's lookup (panic: %v)", p)),
					Err:     &panicError{value: p, stack: debug.Stack()}}
			}
		}()
		return f()
	}
}

// panicError keeps a recovered panic and its stack for logs.
type panicError struct {
	value any
	stack []byte
}

func (e *panicError) Error() string { return fmt.Sprintf("panic: %v\n%s", e.value, e.stack) }

// containedTransport turns a panic in a round trip into an error. Some round
// trips run in goroutines of go-containerregistry's own (its ping races
// HTTPS and HTTP), out of reach of the flight's recover.
type containedTransport struct{ next http.RoundTripper }

func (t containedTransport) RoundTrip(req *http.Request) (resp *http.Response, err error) {
	defer func() {
		if p := recover(); p != nil {
			resp, err = nil, &panicError{value: p, stack: debug.Stack()}
		}
	}()
	return t.next.RoundTrip(req)
}
