//go:build tools

// Package tools pins the container runtime the differential test
// (test/runtimediff) uses as its oracle: containerd, the runtime under most
// kubelets, built from the Go module proxy.
package tools

import (
	_ "github.com/containerd/containerd/v2/cmd/containerd"
)
