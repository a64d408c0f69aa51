package main

import (
	"flag"
	"fmt"
	"net/url"
	"strconv"

	"github.com/pullsafe/pullsafe/webhook"
)

// listenOnURLPort makes `serve --webhook-url https://HOST:PORT` listen on
// PORT (443 when the URL names none: that is where the API server calls)
// unless --port was given. Given both, the server keeps --port and warns
// that they differ (a proxy may sit between them).
func listenOnURLPort(fs *flag.FlagSet, o *webhook.ServerOptions) error {
	if o.WebhookURL == "" {
		return nil
	}
	portSet := false
	fs.Visit(func(f *flag.Flag) { portSet = portSet || f.Name == "port" })
	if portSet {
		return nil
	}
	u, err := url.Parse(o.WebhookURL)
	if err != nil || u.Scheme != "https" {
		return nil // Validate reports it
	}
	port := 443
	if p := u.Port(); p != "" {
		if port, err = strconv.Atoi(p); err != nil || port <= 0 || port > 65535 {
			return fmt.Errorf("--webhook-url %q: bad port", o.WebhookURL)
		}
	}
	o.Port = port
	return nil
}
