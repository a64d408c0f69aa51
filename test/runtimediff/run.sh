#!/usr/bin/env bash
# Runs the runtime differential (pullsafe's verdicts vs containerd's CRI
# PullImage) and prints its confusion matrix; `make runtimediff` and
# test/run.sh call it. Needs root (containerd) and the test-bed binaries
# (test/tools/build.sh, run first: a no-op once they are cached).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
go vet ./...
# The arm64 node is an arm64 containerd under qemu user emulation; as root on
# a Debian machine without it, install it (the test says loudly when it is
# missing and runs the amd64 cases only).
if ! command -v qemu-aarch64-static >/dev/null && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  echo "installing qemu-user-static (the arm64 node's emulator) with apt-get ..."
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user-static; } >/dev/null 2>&1 ||
    echo "!!! could not install qemu-user-static: the arm64 cases will not run"
fi
# Outside `go test`, so a cold machine's build does not eat into its
# timeout; after qemu's install, which decides whether the arm64 containerd
# is built. Its progress goes to stderr.
if [ "$(id -u)" -eq 0 ]; then ../tools/build.sh runtime >/dev/null; fi
log=$(mktemp "${TMPDIR:-/tmp}/pullsafe-runtimediff.XXXXXX")
trap 'rm -f "$log"' EXIT
status=0
# -parallel: most cases wait on loopback registries (the slow ones ~1.5 s a
# request), not on the CPU.
go test -count=1 -v -parallel 8 -timeout 15m . >"$log" 2>&1 || status=$?
if [ "$status" -eq 0 ]; then
  # The matrix and the SKIP notice; not the per-case RUN/PASS lines.
  grep -v -e '^=== ' -e 'runtimediff_test.go:[0-9]*: case ' -e '^    --- PASS' -e '^        --- PASS' -e '^--- PASS' "$log"
else
  cat "$log"
  echo "runtime differential FAILED (re-run alone: make runtimediff)"
fi
exit "$status"
