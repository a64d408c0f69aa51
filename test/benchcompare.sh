#!/usr/bin/env bash
# Compares the micro-benchmarks of BASE (a git ref) with the working tree,
# side by side in one run: `make bench-compare BASE=main`.
#
# BASE is extracted with `git archive` into a temporary folder; each package's
# test binary is built once per side, then the two are run alternately COUNT
# times (one -count 1 run each, base first), so a machine that slows down
# during the run (2 shared cores) slows both sides alike. Prints
# `benchstat base.txt new.txt`; the raw files stay in OUT.
#
# Environment: BASE (default main), COUNT (8), BENCH (the -bench pattern,
# default .), PKGS (default "./webhook ./policy ./registry"), OUT (default
# _output/bench), BENCHSTAT (the pinned binary; make bench-compare sets it).
set -euo pipefail

BASE=${BASE:-main}
COUNT=${COUNT:-8}
BENCH=${BENCH:-.}
PKGS=${PKGS:-./webhook ./policy ./registry}
OUT=${OUT:-_output/bench}
BENCHSTAT=${BENCHSTAT:-benchstat}
GO=${GO:-go}

root=$(git rev-parse --show-toplevel)
cd "$root"
base_rev=$(git rev-parse --short "$BASE^{commit}")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/base" "$tmp/bin/base" "$tmp/bin/new" "$OUT"
git archive "$base_rev" | tar -x -C "$tmp/base"

# build SIDE DIR: one test binary per package, named after it.
build() {
	local side=$1 dir=$2 pkg
	for pkg in $PKGS; do
		if [ ! -d "$dir/$pkg" ]; then
			echo "bench-compare: $pkg does not exist in $side; skipped there" >&2
			continue
		fi
		(cd "$dir" && $GO test -c -o "$tmp/bin/$side/$(echo "$pkg" | tr -c 'a-zA-Z0-9\n' _).test" "$pkg")
	done
}
echo "bench-compare: building $BASE ($base_rev) and the working tree" >&2
build base "$tmp/base"
build new "$root"

: >"$OUT/base.txt"
: >"$OUT/new.txt"
for i in $(seq "$COUNT"); do
	echo "bench-compare: round $i of $COUNT" >&2
	for pkg in $PKGS; do
		bin=$(echo "$pkg" | tr -c 'a-zA-Z0-9\n' _).test
		for side in base new; do
			dir=$root
			[ "$side" = base ] && dir=$tmp/base
			[ -x "$tmp/bin/$side/$bin" ] || continue
			# Run in the package's folder, as go test does (testdata).
			(cd "$dir/$pkg" && "$tmp/bin/$side/$bin" -test.run XXX -test.bench "$BENCH" -test.benchmem -test.count 1) \
				| { grep -E '^(goos|goarch|pkg|cpu|Benchmark)' || true; } >>"$OUT/$side.txt" # none: no benchmark matches there
		done
	done
done
{
	echo "# base: $BASE ($base_rev); new: working tree of $(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo ' + uncommitted changes'); -count $COUNT, alternating"
	echo "# machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $($GO env GOVERSION)"
	"$BENCHSTAT" base="$OUT/base.txt" new="$OUT/new.txt"
} | tee "$OUT/benchstat.txt"
