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
running=$(mktemp -d "${TMPDIR:-/tmp}/pullsafe-build.XXXXXX") # one file per step under way (heartbeat -d)
beat=
# Only this shell: a heartbeat stopped before it set its own trap runs this
# one (see test/run.sh's cleanup).
trap '[ "$BASHPID" != "$$" ] || { rm -rf "$out"/.build.$$.* "$running"; [ -z "$beat" ] || kill "$beat" 2>/dev/null || true; }' EXIT
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
  (cd "$dir" && CGO_ENABLED=0 GOARCH=${arch:-$(go env GOARCH)} go build -trimpath -tags "$tags" \
    -ldflags "-s -w $ldflags" -o "$dest" "$@") || { rm -rf "$tmp"; return 1; }
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
  echo "test bed: building ${names_all% } into $out" >&2
  echo "  (from source, once: about 12 min for the bed on an idle 2-core machine, containerd ~6 CPU-minutes more; README, Quick start)" >&2
  # Downloads side by side (the network waits, not the CPU), then one go
  # build after another: go builds run at once on a cold cache each compile
  # the same standard library and shared modules, CPU a 2-core machine does
  # not have (seen: four builds compiling reflect and math/big at once).
  fetch() { # fetch ENTRY -> the modules ENTRY's build needs, in the module cache
    local names dir arch tags ldflags pkgs
    IFS='|' read -r names dir arch tags ldflags pkgs <<<"$1"
    # shellcheck disable=SC2086 # pkgs is a word list
    (cd "$dir" && CGO_ENABLED=0 GOARCH=${arch:-$(go env GOARCH)} go list -deps -tags "$tags" $pkgs >/dev/null)
  }
  fetch_all() {
    local e p s=0 pids=()
    for e in "$@"; do fetch "$e" & pids+=($!); done
    # A bare `wait` answers 0 whatever the jobs did: wait for each.
    for p in "${pids[@]}"; do wait "$p" || s=1; done
    return "$s"
  }
  # One heartbeat for the steps below, naming what is still running.
  heartbeat -d "$running" &
  beat=$!
  m=$((total + 1)) n=1 failed=0
  step_heartbeat=0 step 1 "$m" "downloading the modules of ${names_all% }" task "$running" "downloading modules" fetch_all "${plan[@]}" || failed=1
  for p in "${plan[@]}"; do
    [ "$failed" -eq 0 ] || break
    n=$((n + 1))
    step_heartbeat=0 step "$n" "$m" "building ${p%%|*}" task "$running" "building ${p%%|*}" gobuild "$p" || failed=1
  done
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
