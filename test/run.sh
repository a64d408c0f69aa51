#!/usr/bin/env bash
# The project's one test command (`make test`, run by .ci/run): formatting,
# vet, staticcheck, unit tests with the race detector, the differential and
# Helm suites, then the end-to-end suite on the real test bed. Packages
# without tests are named loudly. Each phase prints "[n/m] what (elapsed)",
# a heartbeat every 30 s while it runs, and its wall and CPU time.
#
# The test-bed binaries (test/tools/build.sh) build in the background from
# the start: a cold machine spends minutes there downloading modules and
# linking on one core, time the lint and unit phases fill. Later runs reuse
# ~/.cache/pullsafe-tools and build nothing.
#
#   PULLSAFE_SKIP_E2E  set: stop after the Helm suite (`make unit`); no test bed
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. test/tools/progress.sh

e2e=1
[ -z "${PULLSAFE_SKIP_E2E:-}" ] || e2e=0
total=6
[ "$e2e" -eq 0 ] || total=10

# A folder named for this run: a plain /tmp/tmp.* file vanished mid-run on
# the shared machine (something there sweeps such names).
work=$(mktemp -d "${TMPDIR:-/tmp}/pullsafe-test.XXXXXX")
toolspid= hb= toolsdir=$work/tools-dir log=$work/e2e.log
cleanup() {
  # Only this shell cleans up. A heartbeat (a subshell) stopped before it
  # set its own trap runs this shell's TERM and EXIT traps: it deleted the
  # run's folder (the e2e log's, the tools folder's) and would stop the
  # background build, mid-run.
  [ "$BASHPID" = "$$" ] || return 0
  # A run that fails early stops its background build (its own process
  # group: the go commands under it too) rather than leave it running.
  if [ -n "$toolspid" ] && kill -0 "$toolspid" 2>/dev/null; then kill -- "-$toolspid" 2>/dev/null || true; fi
  # Heartbeats of a phase cut short (TERM): they would outlive the run.
  progress_stop
  if [ -n "$hb" ]; then kill "$hb" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
# The background build has a session of its own, so Ctrl-C does not reach
# it: exit through cleanup, which stops it.
trap 'exit 130' INT
trap 'exit 143' TERM
if [ "$e2e" -eq 1 ]; then
  echo "test bed: building in the background (lines marked [test bed]); the end-to-end phases wait for it" >&2
  # setsid: a process group of its own, so cleanup can stop all of it.
  setsid ./test/tools/build.sh bed runtime >"$toolsdir" 2> >(sed -u 's/^/    [test bed] /' >&2) &
  toolspid=$!
fi

lint() { make --no-print-directory lint; }
step 1 "$total" "lint: gofmt, go vet, staticcheck (pinned; installed into ./bin)" lint

untested() {
  # Helpers that exist only for tests (registrytest, the test bed, the demo,
  # the benchmark program) are exercised by the suites that import them.
  local missing
  missing=$(go list -f '{{if and (not .TestGoFiles) (not .XTestGoFiles)}}{{.ImportPath}}{{end}}' ./... |
    grep -v -e '^$' -e '/registrytest$' -e '/test/bed$' -e '/test/demo$' -e '/test/bench$' -e '/test/golden$' || true)
  if [ -n "$missing" ]; then
    echo "!!! WARNING: these packages have NO tests:"; echo "$missing" | sed 's/^/!!!   /'
  else
    echo "every package has tests"
  fi
}
step 2 "$total" "packages without tests" untested

step 3 "$total" "unit tests (go test -race ./...)" go test -race -count=1 ./...

inmod() { (cd "$1" && go vet ./... && go test -count=1 ./...); }
step 4 "$total" "keychain vs the kubelet's own keyring (differential, module test/kubeletdiff)" inmod test/kubeletdiff
step 5 "$total" "hosts.toml reader vs containerd's own (differential, module test/hostsdiff)" inmod test/hostsdiff
# Helm's SDK, kustomize and Prometheus's parser stay out of pullsafe's
# go.mod; a cold build of this module takes minutes (the README's numbers).
step 6 "$total" "Helm chart vs kustomize, helm lint, PromQL of alerts and dashboard (module test/helm)" inmod test/helm

if [ "$e2e" -eq 0 ]; then
  echo "!!! PULLSAFE_SKIP_E2E is set: the end-to-end suite did NOT run"
  exit 0
fi

# Phase 7 waits for the background build: not a `step`, whose subshell
# cannot wait for this shell's job.
start=$SECONDS
echo "[7/$total] test-bed binaries (test/tools/build.sh, started in the background) (elapsed $(elapsed))" >&2
heartbeat "waiting for the test-bed build" &
hb=$!
tstatus=0
wait "$toolspid" || tstatus=$?
toolspid=
kill "$hb" 2>/dev/null; wait "$hb" 2>/dev/null || true
hb=
if [ "$tstatus" -ne 0 ]; then
  echo "[7/$total] test-bed binaries: FAILED (exit $tstatus; the [test bed] lines above say which; re-run alone: make tools)" >&2
  exit "$tstatus"
fi
dir=$(cat "$toolsdir" 2>/dev/null || true)
# Gone anyway: ask again (a no-op that prints the folder once all is built).
[ -n "$dir" ] || dir=$(./test/tools/build.sh bed runtime)
echo "[7/$total] test-bed binaries: ready in $dir (waited $(dur $((SECONDS - start))); elapsed $(elapsed))" >&2

# As root (containerd); otherwise it says loudly that it was skipped.
diffstatus=0
step 8 "$total" "pullsafe's verdicts vs containerd's CRI PullImage (differential, test/runtimediff)" \
  ./test/runtimediff/run.sh || diffstatus=$?

status=0
e2etest() { go test -tags e2e -count=1 -timeout 40m -v ./test/e2e/ >"$log" 2>&1; }
step 9 "$total" "end-to-end tests (real kube-apiserver, etcd, distribution, kubectl; output at the end)" e2etest || status=$?
if [ "$status" -eq 0 ]; then
  dryrun() { (cd test/helm && go test -tags e2e -count=1 -timeout 15m ./...) >>"$log" 2>&1; }
  step 10 "$total" "chart and kustomize objects, ServiceMonitor, PrometheusRule: server dry-run; metric names on /metrics" \
    dryrun || status=$?
else
  echo "[10/$total] chart dry-run: not run (the end-to-end tests failed)" >&2
fi
if [ "$status" -eq 0 ]; then
  grep -v '^\[' "$log"   # the kubectl transcript; process logs ("[pullsafe] ...") only on failure
else
  cat "$log"
  echo "end-to-end suite FAILED (re-run alone: make e2e)"
fi
[ "$diffstatus" -eq 0 ] || echo "runtime differential FAILED (above; re-run alone: make runtimediff)"
[ "$status" -ne 0 ] || status=$diffstatus
echo "== make test: $([ "$status" -eq 0 ] && echo passed || echo FAILED) in $(elapsed)" >&2
exit "$status"
