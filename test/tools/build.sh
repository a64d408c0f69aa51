#!/usr/bin/env bash
# Builds the end-to-end test bed from the Go module proxy into a cache folder
# outside the repository, keyed by version, and prints that folder. A second
# run with the same versions builds nothing; each binary is built only when
# missing, so a cache made before a binary was added gets just that one.
#
#   build.sh [bed] [runtime]
#     bed      kube-apiserver, kube-controller-manager, kubectl, etcd, the
#              distribution registry: the demo and the end-to-end suite (default)
#     runtime  as root only: containerd for this machine, and for linux/arm64 when
#              the runtime differential will run its arm64 node (see want_arm64)
#
#   PULLSAFE_TOOLS_CACHE  cache root (default: ${XDG_CACHE_HOME:-~/.cache}/pullsafe-tools)
#
# Progress ("[n/m] building ...", a heartbeat every 30 s, wall and CPU time of
# each build) goes to stderr; stdout is the folder only.
#
# Versions are pinned in one place: the go.mod files beside this script.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${PULLSAFE_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pullsafe-tools}
# shellcheck source=progress.sh
. "$here/progress.sh"

modver() { # modver DIR MODULE -> the version DIR/go.mod requires
  awk -v m="$2" '$1==m {print $2; exit} $1=="require" && $2==m {print $3; exit}' "$1/go.mod"
}
kube=$(modver "$here/kube" k8s.io/kubernetes)
etcd=$(modver "$here/etcd" go.etcd.io/etcd/server/v3)
dist=$(modver "$here/distribution" github.com/distribution/distribution/v3)
ctrd=$(modver "$here/containerd" github.com/containerd/containerd/v2)
out="$cache/k8s-$kube-etcd-$etcd-distribution-$dist"
mkdir -p "$out"
# Stopped half-way (test/run.sh stops its background build when a phase
# fails), it leaves no half-written binaries behind.
running=$(mktemp -d) # one empty file per go build under way, named by what it builds
trap 'rm -rf "$out"/.build.$$.* "$running"' EXIT
trap 'exit 143' TERM INT

# The arm64 node of test/runtimediff is an arm64 containerd run under
# qemu-aarch64-static, on amd64 machines only, as root (containerd): its
# cross-build (~3.5 min of CPU) is wasted anywhere the differential cannot
# run it. test/runtimediff/run.sh installs qemu as root with apt-get, so that
# counts as "will have it".
want_arm64() {
  [ "$(go env GOARCH)" = amd64 ] && [ "$(id -u)" -eq 0 ] || return 1
  command -v qemu-aarch64-static >/dev/null || command -v apt-get >/dev/null
}

sets=("$@")
[ ${#sets[@]} -gt 0 ] || sets=(bed)
want_bed=0 want_runtime=0
for s in "${sets[@]}"; do
  case $s in
    bed) want_bed=1 ;;
    # containerd needs root: as anyone else the differential skips, loudly.
    runtime) [ "$(id -u)" -ne 0 ] || want_runtime=1 ;;
    *) echo "build.sh: unknown set $s (want: bed, runtime)" >&2; exit 2 ;;
  esac
done

minor=${kube#v1.}; minor=${minor%%.*}
version_ldflags="-X k8s.io/component-base/version.gitVersion=$kube -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
tags_ctrd="no_btrfs no_zfs no_devmapper no_aufs"

# The plan: one line per go build, "NAMES|DIR|GOARCH|TAGS|LDFLAGS|PKGS". The
# three Kubernetes commands are one go build: they share most packages, and
# one invocation keeps both cores busy while another binary links.
plan=()
missing() { local n; for n in "$@"; do [ -x "$out/$n" ] || { echo yes; return; }; done; }
if [ "$want_bed" -eq 1 ]; then
  [ -z "$(missing etcd)" ] || plan+=("etcd|$here/etcd||||.")
  [ -z "$(missing registry)" ] || plan+=("registry|$here/distribution||||.")
fi
if [ "$want_runtime" -eq 1 ]; then
  [ -z "$(missing "containerd-$ctrd")" ] ||
    plan+=("containerd-$ctrd|$here/containerd||$tags_ctrd||github.com/containerd/containerd/v2/cmd/containerd")
  if want_arm64; then
    [ -z "$(missing "containerd-$ctrd-linux-arm64")" ] ||
      plan+=("containerd-$ctrd-linux-arm64|$here/containerd|arm64|$tags_ctrd||github.com/containerd/containerd/v2/cmd/containerd")
  fi
fi
if [ "$want_bed" -eq 1 ]; then
  kubes=() pkgs=()
  for n in kube-apiserver kubectl kube-controller-manager; do
    [ -x "$out/$n" ] || { kubes+=("$n"); pkgs+=("k8s.io/kubernetes/cmd/$n"); }
  done
  [ ${#kubes[@]} -eq 0 ] || plan+=("${kubes[*]}|$here/kube|||$version_ldflags|${pkgs[*]}")
fi

# gobuild "NAMES|DIR|..." -> builds NAMES into $out through temporary names
# of their own: two checkouts building at once (developers in parallel
# worktrees) must not move each other's half-written files.
gobuild() {
  local names dir arch tags ldflags pkgs tmp n
  IFS='|' read -r names dir arch tags ldflags pkgs <<<"$1"
  tmp=$(mktemp -d "$out/.build.$$.XXXXXX")
  # A go build of several main packages writes each into the -o folder under
  # the package's last element; one package gets a file name.
  local dest=$tmp/
  # shellcheck disable=SC2086 # pkgs is a word list
  set -- $pkgs
  [ $# -gt 1 ] || dest=$tmp/$names
  : >"$running/$names"
  (cd "$dir" && CGO_ENABLED=0 GOARCH=${arch:-$(go env GOARCH)} go build -trimpath -tags "$tags" \
    -ldflags "-s -w $ldflags" -o "$dest" "$@") || { rm -rf "$tmp" "$running/$names"; return 1; }
  rm -f "$running/$names"
  for n in $names; do
    mv -f "$tmp/$n" "$out/$n"
  done
  rm -rf "$tmp"
}

total=${#plan[@]}
if [ "$total" -eq 0 ]; then
  echo "test bed: every binary already built in $out" >&2
else
  names_all=$(for p in "${plan[@]}"; do echo -n "${p%%|*} "; done)
  echo "test bed: $total go builds to run into $out: ${names_all% }" >&2
  echo "  (a cold 2-core machine: ~12 min for the bed, ~6 min more for containerd; later runs: nothing to build)" >&2
  # The small builds (etcd, registry, containerd) run together, then the
  # Kubernetes build alone: it is the largest, and its link needs the memory.
  run_build() { # run_build N ENTRY
    local entry=$2 names=${2%%|*}
    step_heartbeat=0 step "$1" "$total" "building $names" gobuild "$entry"
  }
  # One heartbeat for the builds side by side, naming those still running.
  heartbeat building "$running" &
  beat=$!
  pids=() n=0 failed=0 kube_entry=
  for p in "${plan[@]}"; do
    case ${p%%|*} in kube*) kube_entry=$p; continue ;; esac
    n=$((n + 1))
    run_build "$n" "$p" & pids+=($!)
  done
  # A bare `wait` answers 0 whatever the builds did: wait for each.
  for p in "${pids[@]}"; do wait "$p" || failed=1; done
  if [ -n "$kube_entry" ] && [ "$failed" -eq 0 ]; then
    n=$((n + 1))
    run_build "$n" "$kube_entry" || failed=1
  fi
  kill "$beat" 2>/dev/null; wait "$beat" 2>/dev/null || true
  [ "$failed" -eq 0 ] || { echo "building the test bed failed (above)" >&2; exit 1; }
fi
# containerd is named by its version (the folder's name does not carry it)
# and reached through the containerd link. The link is swapped, not
# rewritten in place: a worktree pinning another version moves it whole.
link() { ln -sfn "$1" "$out/.$2.$$" && mv -Tf "$out/.$2.$$" "$out/$2"; }
if [ "$want_runtime" -eq 1 ]; then
  link "containerd-$ctrd" containerd
  if [ -x "$out/containerd-$ctrd-linux-arm64" ]; then link "containerd-$ctrd-linux-arm64" containerd-linux-arm64; fi
fi
echo "$out"
