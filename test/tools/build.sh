#!/usr/bin/env bash
# Builds the end-to-end test bed (kube-apiserver, kube-controller-manager, kubectl, etcd,
# distribution registry, containerd) from the Go module proxy into a cache folder outside the
# repository, keyed by version, and prints that folder. A second run with the same
# versions builds nothing; each binary is built only when missing, so a cache made
# before a binary was added gets just that one.
#
#   PULLSAFE_TOOLS_CACHE  cache root (default: ${XDG_CACHE_HOME:-~/.cache}/pullsafe-tools)
#
# Versions are pinned in one place: the go.mod files beside this script.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${PULLSAFE_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pullsafe-tools}

modver() { # modver DIR MODULE -> the version DIR/go.mod requires
  awk -v m="$2" '$1==m {print $2; exit} $1=="require" && $2==m {print $3; exit}' "$1/go.mod"
}
kube=$(modver "$here/kube" k8s.io/kubernetes)
etcd=$(modver "$here/etcd" go.etcd.io/etcd/server/v3)
dist=$(modver "$here/distribution" github.com/distribution/distribution/v3)
ctrd=$(modver "$here/containerd" github.com/containerd/containerd/v2)
out="$cache/k8s-$kube-etcd-$etcd-distribution-$dist"
mkdir -p "$out"

minor=${kube#v1.}; minor=${minor%%.*}
build() { # build NAME DIR PKG [LDFLAGS [TAGS [GOARCH]]]
  local name=$1 dir=$2 pkg=$3 ldflags=${4:-} tags=${5:-} arch=${6:-}
  [ -x "$out/$name" ] && return 0
  echo "building $name ($pkg) into $out ..." >&2
  # A temporary name of its own: two checkouts building at once (developers
  # in parallel worktrees) must not move each other's half-written files.
  local tmp
  tmp=$(mktemp "$out/.$name.XXXXXX")
  (cd "$dir" && CGO_ENABLED=0 GOARCH=${arch:-$(go env GOARCH)} go build -trimpath -tags "$tags" -ldflags "-s -w $ldflags" -o "$tmp" "$pkg") || { rm -f "$tmp"; return 1; }
  mv -f "$tmp" "$out/$name"
}
version_ldflags="-X k8s.io/component-base/version.gitVersion=$kube -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
# containerd, the oracle of test/runtimediff, is named by its version (the
# folder's name does not carry it) and reached through the containerd link;
# containerd-linux-arm64 is the arm64 node's (CRI pulls for the platform its
# binary was built for), run under qemu-aarch64-static. The small builds
# share the two cores (timings in docs/runtime-differential.md).
pids=()
build etcd "$here/etcd" . & pids+=($!)
build registry "$here/distribution" . & pids+=($!)
build "containerd-$ctrd" "$here/containerd" github.com/containerd/containerd/v2/cmd/containerd "" \
  "no_btrfs no_zfs no_devmapper no_aufs" & pids+=($!)
build "containerd-$ctrd-linux-arm64" "$here/containerd" github.com/containerd/containerd/v2/cmd/containerd "" \
  "no_btrfs no_zfs no_devmapper no_aufs" arm64 & pids+=($!)
# A bare `wait` answers 0 whatever the builds did: wait for each.
failed=0
for p in "${pids[@]}"; do wait "$p" || failed=1; done
[ "$failed" -eq 0 ] || { echo "building the test bed failed" >&2; exit 1; }
# The link is swapped, not rewritten in place: a worktree pinning another
# version moves it whole.
link() { ln -sfn "$1" "$out/.$2.$$" && mv -Tf "$out/.$2.$$" "$out/$2"; }
link "containerd-$ctrd" containerd
link "containerd-$ctrd-linux-arm64" containerd-linux-arm64
build kube-apiserver "$here/kube" k8s.io/kubernetes/cmd/kube-apiserver "$version_ldflags"
build kubectl "$here/kube" k8s.io/kubernetes/cmd/kubectl "$version_ldflags"
# The workload controllers (deployment, replicaset, ...): the bed runs them so
# Deployments roll out through admission as in a cluster.
build kube-controller-manager "$here/kube" k8s.io/kubernetes/cmd/kube-controller-manager "$version_ldflags"
echo "$out"
