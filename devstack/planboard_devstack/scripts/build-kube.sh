#!/usr/bin/env bash
# Build a local Kubernetes once into the Planboard cache, in two parts:
#   build-kube.sh [control-plane]  kube-apiserver, kube-controller-manager, kubectl
#                                  (k8s.io/kubernetes) and etcd (go.etcd.io/etcd/server/v3,
#                                  the version Kubernetes itself pins): tests/k8s
#   build-kube.sh node             kubelet, kube-scheduler, kube-proxy and the pause
#                                  container's program (Kubernetes' own build/pause/linux/
#                                  pause.c, compiled static with the machine's C compiler):
#                                  the one-node cluster of tests/cluster (make test-cluster)
#
# Everything comes from the Go module proxy and is compiled with the machine's
# Go (>= 1.26; the toolchain line of go.mod lets an older `go` fetch it through
# the proxy). k8s.io/kubernetes cannot be `go install`ed directly because its
# go.mod replaces the k8s.io/* staging modules with ./staging/src paths, so a
# throwaway wrapper module re-declares those replaces against the published
# staging module versions (k8s.io/api v0.X.Y for Kubernetes v1.X.Y) and builds
# the main packages from there.
#
# Result: $PLANBOARD_CACHE_DIR/kube/v<version>/bin/{kube-apiserver,
# kube-controller-manager,kubectl,etcd} for the control plane, .../node/bin/{kubelet,
# kube-scheduler,kube-proxy,pause} for the node; the bin directory is printed on stdout
# (progress and timings go to stderr). Each part has its own marker (so a cached control
# plane stays valid when the node is added), a second run is instant, one flock per
# version serialises concurrent runs, and the ~3.5 GB build tree (module and build
# caches) is deleted once the binaries are copied out.
#
# Environment: PLANBOARD_KUBE_VERSION (default below), PLANBOARD_CACHE_DIR,
# GO (path of the go command), PLANBOARD_KUBE_KEEP_BUILD=1 keeps the build tree.
set -euo pipefail

KUBE_VERSION="${PLANBOARD_KUBE_VERSION:-1.36.3}"
KUBE_VERSION="${KUBE_VERSION#v}"
CACHE="${PLANBOARD_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/planboard}"
ROOT="$CACHE/kube/v$KUBE_VERSION"
PART="${1:-control-plane}"

log() { printf '[build-kube] %s\n' "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

case "$PART" in
control-plane)
    PART_ROOT="$ROOT"
    BINARIES=(kube-apiserver kube-controller-manager kubectl etcd)
    GO_MAINS=(kube-apiserver kube-controller-manager kubectl)
    ;;
node)
    PART_ROOT="$ROOT/node"
    BINARIES=(kubelet kube-scheduler kube-proxy pause)
    GO_MAINS=(kubelet kube-scheduler kube-proxy)
    ;;
*) die "usage: build-kube.sh [control-plane|node], got '$PART'" ;;
esac
BIN="$PART_ROOT/bin"
MARKER="$PART_ROOT/.complete"

complete() {
    [[ -f "$MARKER" ]] || return 1
    local b
    for b in "${BINARIES[@]}"; do
        [[ -x "$BIN/$b" ]] || return 1
    done
}

if complete; then
    echo "$BIN"
    exit 0
fi

[[ "$KUBE_VERSION" =~ ^1\.([0-9]+)\.([0-9]+)$ ]] || die "PLANBOARD_KUBE_VERSION must look like 1.36.3, got '$KUBE_VERSION'"
KUBE_MINOR="${BASH_REMATCH[1]}"
STAGING_VERSION="v0.${KUBE_MINOR}.${BASH_REMATCH[2]}"

mkdir -p "$CACHE/kube"
exec 9>"$CACHE/kube/v$KUBE_VERSION.lock"
if ! flock -n 9; then
    log "another build of Kubernetes v$KUBE_VERSION is running; waiting for it"
    flock 9
fi
if complete; then
    echo "$BIN"
    exit 0
fi

GO="${GO:-$(command -v go || true)}"
[[ -n "$GO" ]] || GO=/usr/local/go/bin/go
[[ -x "$GO" ]] || die "no Go toolchain found (looked for 'go' on PATH and /usr/local/go/bin/go); Go >= 1.26 is needed"

free_kb=$(df -Pk "$CACHE" | awk 'NR==2 {print $4}')
if [[ -n "$free_kb" ]] && ((free_kb < 4 * 1024 * 1024)); then
    die "the Kubernetes build needs about 4 GB of free disk under $CACHE; only $((free_kb / 1024)) MB free"
fi

START=$SECONDS
step_start=$SECONDS
step() {
    log "$1 done in $((SECONDS - step_start))s"
    step_start=$SECONDS
}

if [[ "$PART" == node ]]; then
    CC="${CC:-$(command -v cc || true)}"
    [[ -n "$CC" ]] || die "no C compiler (cc) found: the pause program is built from Kubernetes' pause.c (apt-get install gcc libc6-dev)"
fi

BUILD="$PART_ROOT/build"
rm -rf "$BUILD" "$BIN"
mkdir -p "$BUILD/mod" "$BUILD/out"
# Private caches so the whole build tree can be deleted afterwards; -modcacherw
# keeps the module cache deletable with a plain rm -rf.
export GOPATH="$BUILD/gopath" GOMODCACHE="$BUILD/gomodcache" GOCACHE="$BUILD/gocache"
export GOFLAGS="-mod=mod -modcacherw" CGO_ENABLED=0 GOWORK=off
unset GOBIN GOOS GOARCH
log "building Kubernetes v$KUBE_VERSION ($PART) with $("$GO" version) in $BUILD"

# The staging modules k8s.io/kubernetes replaces with local paths.
kmod_json=$(cd "$BUILD/mod" && "$GO" mod download -json "k8s.io/kubernetes@v$KUBE_VERSION") ||
    die "could not download k8s.io/kubernetes@v$KUBE_VERSION from the Go module proxy"
kmod_file=$(printf '%s\n' "$kmod_json" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
[[ -f "$kmod_file" ]] || die "no go.mod in the download of k8s.io/kubernetes@v$KUBE_VERSION"
mapfile -t staging < <(sed -n 's|^[[:space:]]*\(k8s\.io/[a-z0-9-]*\) => \./staging/src/.*$|\1|p' "$kmod_file")
((${#staging[@]} > 10)) || die "unexpected go.mod of k8s.io/kubernetes@v$KUBE_VERSION: no staging replaces found"
go_line=$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$kmod_file")
{
    printf 'module planboard.dev/kubebuild\n\ngo %s\n\nreplace (\n' "${go_line:-1.26.0}"
    for m in "${staging[@]}"; do
        printf '\t%s => %s %s\n' "$m" "$m" "$STAGING_VERSION"
    done
    printf ')\n'
} >"$BUILD/mod/go.mod"
packages=()
for main in "${GO_MAINS[@]}"; do
    packages+=("k8s.io/kubernetes/cmd/$main")
done
(cd "$BUILD/mod" && "$GO" get "${packages[@]/%/@v$KUBE_VERSION}" 2>"$BUILD/go-get.log") ||
    die "resolving the Kubernetes modules failed; see $BUILD/go-get.log"
step "module download"

build_date=$(sed -n 's/.*"Time":"\([^"]*\)".*/\1/p' "${kmod_file%.mod}.info" 2>/dev/null || true)
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=v$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$KUBE_MINOR"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=${build_date:-1970-01-01T00:00:00Z}"
done
(cd "$BUILD/mod" && "$GO" build -trimpath -ldflags "$ldflags" -o "$BUILD/out/" "${packages[@]}") >&2 ||
    die "building Kubernetes v$KUBE_VERSION failed"
step "${GO_MAINS[*]} build"
if [[ "$PART" == control-plane ]]; then
    # etcd at exactly the version k8s.io/kubernetes pins (go.etcd.io/etcd/server/v3
    # is etcd's main package).
    (cd "$BUILD/mod" && "$GO" build -trimpath -ldflags "-s -w" -o "$BUILD/out/etcd" go.etcd.io/etcd/server/v3) >&2 ||
        die "building etcd failed"
    step "etcd build"
    "$BUILD/out/kube-apiserver" --version >&2
    "$BUILD/out/etcd" --version 2>&1 | head -1 >&2
else
    # The sandbox ("pause") container's program, from the same k8s.io/kubernetes release:
    # static, so its image needs nothing but the binary.
    kdir=$(printf '%s\n' "$kmod_json" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
    pause_c="$kdir/build/pause/linux/pause.c"
    [[ -f "$pause_c" ]] || die "no build/pause/linux/pause.c in k8s.io/kubernetes@v$KUBE_VERSION ($pause_c)"
    "$CC" -Os -Wall -Werror -static -DVERSION="v$KUBE_VERSION-planboard" -o "$BUILD/out/pause" "$pause_c" >&2 ||
        die "compiling pause.c failed (a static build needs libc6-dev)"
    strip "$BUILD/out/pause" 2>/dev/null || true
    step "pause build"
    "$BUILD/out/kubelet" --version >&2
fi
rm -rf "$BIN.tmp"
mkdir -p "$BIN.tmp"
for b in "${BINARIES[@]}"; do
    cp "$BUILD/out/$b" "$BIN.tmp/$b"
done
mv "$BIN.tmp" "$BIN"
printf 'kubernetes v%s (%s)\nbuilt %s with %s\n' "$KUBE_VERSION" "$PART" "$(date -u +%FT%TZ)" "$("$GO" version)" >"$MARKER"
if [[ "${PLANBOARD_KUBE_KEEP_BUILD:-0}" != 1 ]]; then
    rm -rf "$BUILD"
fi
log "Kubernetes v$KUBE_VERSION ($PART) ready in $BIN after $((SECONDS - START))s ($(du -sh "$PART_ROOT" | cut -f1) in $PART_ROOT)"
echo "$BIN"
