// Renders and lints charts/pullsafe with Helm's Go SDK and compares it with
// `kustomize build manifests/base`; parses the monitoring rules' PromQL. A
// separate module so that Helm's, kustomize's and Prometheus's dependency
// trees never reach pullsafe's go.mod.
module github.com/pullsafe/pullsafe/test/helm

go 1.26.7

require github.com/pullsafe/pullsafe v0.0.0

require (
	github.com/blang/semver/v4 v4.0.0 // indirect
	github.com/google/go-cmp v0.7.0 // indirect
	github.com/prometheus/prometheus v0.316.0 // indirect
	helm.sh/helm/v3 v3.22.0 // indirect
	sigs.k8s.io/kustomize/api v0.21.1 // indirect
)

replace github.com/pullsafe/pullsafe => ../..
