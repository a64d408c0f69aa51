// Command pullsafe is the admission webhook that refuses images the kubelet
// could not pull. See `pullsafe help`.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"unicode"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if msg := err.Error(); msg != "" {
			fmt.Fprintln(os.Stderr, "pullsafe:", printable(msg))
		}
		os.Exit(exitCode(err))
	}
}

// printable escapes what a terminal would act on (escape sequences, CR,
// bidi overrides) in an error that may quote a file name or a document from
// the user's input, keeping the message's own line breaks.
func printable(msg string) string {
	lines := strings.Split(msg, "\n")
	for i, l := range lines {
		if strings.IndexFunc(l, func(r rune) bool { return r != '\t' && (unicode.IsControl(r) || unicode.Is(unicode.Cf, r)) }) >= 0 {
			q := strconv.Quote(l)
			lines[i] = q[1 : len(q)-1]
		}
	}
	return strings.Join(lines, "\n")
}
