#!/usr/bin/env bash
# The project's one test command (`make test`, run by .ci/run): formatting,
# vet, unit tests with the race detector, then the end-to-end suite on the
# real test bed. Packages without tests are named loudly. The first run on a
# fresh machine builds the test-bed binaries (about 5 minutes on 2 cores);
# later runs reuse ~/.cache/pullsafe-tools.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

echo "== lint: gofmt, go vet, staticcheck (pinned; installed into ./bin)"
make --no-print-directory lint

echo "== packages without tests"
# Helpers that exist only for tests (registrytest, the test bed, the demo, the
# benchmark program) are
# exercised by the suites that import them.
missing=$(go list -f '{{if and (not .TestGoFiles) (not .XTestGoFiles)}}{{.ImportPath}}{{end}}' ./... \
  | grep -v -e '^$' -e '/registrytest$' -e '/test/bed$' -e '/test/demo$' -e '/test/bench$' -e '/test/golden$' || true)
if [ -n "$missing" ]; then
  echo "!!! WARNING: these packages have NO tests:"; echo "$missing" | sed 's/^/!!!   /'
else
  echo "every package has tests"
fi

echo "== unit tests (go test -race)"
go test -race -count=1 ./...

echo "== keychain vs the kubelet's own keyring (differential, separate module)"
(cd test/kubeletdiff && go vet ./... && go test -count=1 ./...)

echo "== hosts.toml reader vs containerd's own (differential, separate module)"
(cd test/hostsdiff && go vet ./... && go test -count=1 ./...)

echo "== Helm chart vs kustomize, helm lint, PromQL of alerts and dashboard (separate module)"
# Helm's SDK, kustomize and Prometheus's parser stay out of pullsafe's
# go.mod; a cold build of this module takes ~4 minutes on 2 cores.
(cd test/helm && go vet ./... && go test -count=1 ./...)

if [ -n "${PULLSAFE_SKIP_E2E:-}" ]; then
  echo "!!! PULLSAFE_SKIP_E2E is set: the end-to-end suite did NOT run"
  exit 0
fi
# Built here, not inside `go test`, so a cold machine's ~5-minute build does
# not eat into the suites' own timeouts.
echo "== test-bed binaries (test/tools/build.sh)"
./test/tools/build.sh >/dev/null
echo "== pullsafe's verdicts vs containerd's CRI PullImage (differential, separate module)"
# As root (containerd); otherwise it says loudly that it was skipped.
diffstatus=0
./test/runtimediff/run.sh || diffstatus=$?
status=0
echo "== end-to-end tests (real kube-apiserver, etcd, distribution, kubectl)"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
go test -tags e2e -count=1 -timeout 40m -v ./test/e2e/ >"$log" 2>&1 || status=$?
if [ "$status" -eq 0 ]; then
  echo "== chart and kustomize objects, ServiceMonitor, PrometheusRule: server dry-run; metric names on /metrics"
  (cd test/helm && go test -tags e2e -count=1 -timeout 15m ./...) >>"$log" 2>&1 || status=$?
fi
if [ "$status" -eq 0 ]; then
  grep -v '^\[' "$log"   # the kubectl transcript; process logs ("[pullsafe] ...") only on failure
else
  cat "$log"
  echo "end-to-end suite FAILED (re-run alone: make e2e)"
fi
[ "$diffstatus" -eq 0 ] || echo "runtime differential FAILED (above; re-run alone: make runtimediff)"
[ "$status" -ne 0 ] || status=$diffstatus
exit "$status"
