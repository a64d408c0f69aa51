package main

import (
	"flag"
	"io"
	"testing"

	"github.com/pullsafe/pullsafe/webhook"
)

// With --webhook-url and no --port, serve listens where the API server
// will call: the URL's port.
func TestListenOnURLPort(t *testing.T) {
	tests := []struct {
		args    []string
		want    int
		wantErr bool
	}{
		{[]string{}, 9443, false},
		{[]string{"--webhook-url", "https://127.0.0.1:8443"}, 8443, false},
		{[]string{"--webhook-url", "https://127.0.0.1"}, 443, false},
		{[]string{"--webhook-url", "https://127.0.0.1:8443", "--port", "9443"}, 9443, false}, // both: --port wins, Serve warns
		{[]string{"--webhook-url", "https://127.0.0.1:8443", "--port", "7000"}, 7000, false},
		{[]string{"--port", "7000"}, 7000, false},
		{[]string{"--webhook-url", "https://127.0.0.1:70000"}, 0, true},
		{[]string{"--webhook-url", "http://127.0.0.1:8443"}, 9443, false}, // Validate refuses http
	}
	for _, tt := range tests {
		var o webhook.ServerOptions
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		fs.IntVar(&o.Port, "port", 9443, "")
		fs.StringVar(&o.WebhookURL, "webhook-url", "", "")
		if err := fs.Parse(tt.args); err != nil {
			t.Fatal(err)
		}
		err := listenOnURLPort(fs, &o)
		if (err != nil) != tt.wantErr || (!tt.wantErr && o.Port != tt.want) {
			t.Errorf("%q: port %d, err %v; want port %d, error %v", tt.args, o.Port, err, tt.want, tt.wantErr)
		}
	}
}
