#!/usr/bin/env bash
# Runs the runtime differential (pullsafe's verdicts vs containerd's CRI
# PullImage) and prints its confusion matrix; `make runtimediff` and
# test/run.sh call it. Needs root (containerd) and the test-bed binaries
# (test/tools/build.sh, which the test runs itself when they are missing).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
go vet ./...
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
# -parallel: most cases wait on loopback registries (the slow ones ~1.5 s a
# request), not on the CPU.
go test -count=1 -v -parallel 8 -timeout 15m -run 'TestRuntimeAgreesWithPullsafe' . >"$log" 2>&1 || status=$?
if [ "$status" -eq 0 ]; then
  # The matrix and the SKIP notice; not the per-case RUN/PASS lines.
  grep -v -e '^=== ' -e '^    --- PASS' -e '^        --- PASS' -e '^--- PASS' "$log"
else
  cat "$log"
  echo "runtime differential FAILED (re-run alone: make runtimediff)"
fi
exit "$status"
