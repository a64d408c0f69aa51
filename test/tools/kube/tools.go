//go:build tools

// Package tools pins the Kubernetes binaries the end-to-end test bed builds.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
