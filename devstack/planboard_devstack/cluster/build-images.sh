#!/usr/bin/env bash
# Build the container images of the one-node cluster (make test-cluster) without a
# Docker engine or a registry, as OCI archives that containerd imports:
#
#   1. a stand-in for the Dockerfile's base image python:3.11.14-slim-bookworm, which
#      cannot be pulled here (no registry is reachable): a Debian bookworm rootfs made by
#      mmdebstrap (--variant=minbase, plus the libraries CPython links against and
#      ca-certificates), with the machine's own CPython 3.11 build copied into /usr/local
#      exactly where the official image has it (/usr/local/bin/python3.11), pip from that
#      CPython's ensurepip, and the machine's CA bundle (SSL_CERT_FILE, PIP_CERT), which
#      `pip install` and `uv sync` in the Dockerfile need to reach PyPI through this
#      machine's egress proxy. Cached by a key of its inputs. It replaces the Docker Hub
#      image on registry-less machines only: a real build pulls the real base image.
#   2. the Planboard image from the repository's UNCHANGED Dockerfile: `buildah bud
#      --isolation chroot --pull=never --layers` (layers cached between runs, so a warm
#      build only redoes the layers whose inputs changed).
#   3. the pause (sandbox) image: FROM scratch plus the static pause binary that
#      `scripts/build-kube.sh node` compiled.
#
# usage: build-images.sh SOURCE_DIR IMAGE_REF PAUSE_BINARY PAUSE_REF OUT_DIR
#   writes OUT_DIR/planboard.tar and OUT_DIR/pause.tar (oci-archive, one image each,
#   named IMAGE_REF and PAUSE_REF) and prints OUT_DIR.
#
# Environment: PLANBOARD_CACHE_DIR; PLANBOARD_STANDIN_PYTHON (default: the machine's
# python3.11 prefix); PLANBOARD_DEBIAN_MIRROR (default http://deb.debian.org/debian).
# Needs root, mmdebstrap and buildah (the caller installs them).
set -euo pipefail

log() { printf '[build-images] %s\n' "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

(($# == 5)) || die "usage: build-images.sh SOURCE_DIR IMAGE_REF PAUSE_BINARY PAUSE_REF OUT_DIR"
SOURCE=$(cd "$1" && pwd)
IMAGE_REF=$2
PAUSE_BIN=$3
PAUSE_REF=$4
OUT=$5
[[ -f "$SOURCE/Dockerfile" ]] || die "$SOURCE has no Dockerfile"
[[ -x "$PAUSE_BIN" ]] || die "no pause binary at $PAUSE_BIN (scripts/build-kube.sh node builds it)"
[[ $(id -u) == 0 ]] || die "building images with buildah here needs root"

CACHE="${PLANBOARD_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/planboard}"
ROOT="$CACHE/cluster/images"
MIRROR="${PLANBOARD_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SECURITY_MIRROR="${MIRROR%/debian}/debian-security"
# The tag of the Dockerfile's ARG PYTHON_IMAGE default: the stand-in takes its name, so the
# Dockerfile builds unchanged.
BASE_REF="docker.io/library/$(sed -n 's/^ARG PYTHON_IMAGE=\(.*\)$/\1/p' "$SOURCE/Dockerfile")"
[[ "$BASE_REF" != docker.io/library/ ]] || die "no 'ARG PYTHON_IMAGE=' line in $SOURCE/Dockerfile"

# The machine's CPython 3.11 (the version the project's tests run on): its installation
# prefix, found from the interpreter itself.
PYTHON_PREFIX="${PLANBOARD_STANDIN_PYTHON:-}"
if [[ -z "$PYTHON_PREFIX" ]]; then
    py=$(command -v python3.11 || true)
    [[ -n "$py" ]] || die "no python3.11 on PATH to copy into the stand-in base image"
    PYTHON_PREFIX=$("$py" -c 'import sys; print(sys.base_prefix)')
fi
[[ -x "$PYTHON_PREFIX/bin/python3.11" ]] || die "$PYTHON_PREFIX/bin/python3.11 is not a CPython 3.11 installation"
PYTHON_VERSION=$("$PYTHON_PREFIX/bin/python3.11" -c 'import platform; print(platform.python_version())')
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
[[ -f "$CA_BUNDLE" ]] || die "no CA bundle at $CA_BUNDLE"

# Libraries the CPython build and its extension modules link against (Debian package names;
# tk is left out as in the official slim image).
PACKAGES=ca-certificates,netbase,tzdata,libbz2-1.0,libcrypt1,libffi8,liblzma5,libncursesw6,libnsl2,libreadline8,libsqlite3-0,libssl3,libtinfo6,libtirpc3,libuuid1,zlib1g

mkdir -p "$ROOT"
exec 9>"$ROOT/.lock"
if ! flock -n 9; then
    log "another image build is running; waiting for it"
    flock 9
fi

BUILDAH=(buildah --root "$ROOT/storage" --runroot "$ROOT/run" --storage-driver overlay)
cleanup() {
    # Working containers of a failed build keep their rootfs mounted: remove them.
    "${BUILDAH[@]}" rm --all >/dev/null 2>&1 || true
}
trap cleanup EXIT

START=$SECONDS
rm -f "$ROOT/planboard-build.log"

# -- 1. the stand-in base image ---------------------------------------------------------
key=$(
    {
        echo "bookworm $MIRROR $PACKAGES python $PYTHON_VERSION $PYTHON_PREFIX"
        cat "$CA_BUNDLE"
        # This section of the script: how the stand-in is made (not the rest).
        sed -n '/^# -- 1\./,/^# -- 2\./p' "${BASH_SOURCE[0]}"
    } | sha256sum | cut -c1-16
)
BASE_DIR="$ROOT/python-standin-$key"
if [[ ! -f "$BASE_DIR/.complete" ]]; then
    log "making the stand-in $BASE_REF: Debian bookworm minbase + CPython $PYTHON_VERSION from $PYTHON_PREFIX"
    rm -rf "$ROOT"/python-standin-*
    mkdir -p "$BASE_DIR"
    # Only the interpreter and its standard library: not the machine's site-packages,
    # tests, IDLE or tkinter.
    copy_python="tar -C '$PYTHON_PREFIX' -c --exclude='lib/python3.11/site-packages/*' \
--exclude=lib/python3.11/test --exclude=lib/python3.11/idlelib --exclude=lib/python3.11/tkinter \
--exclude=lib/python3.11/turtledemo --exclude='lib/python3.11/lib-dynload/_tkinter*' \
--exclude='*/__pycache__' bin/python3.11 bin/python3 bin/python lib/libpython3.11.so \
lib/libpython3.11.so.1.0 lib/python3.11 include/python3.11 | tar -C \"\$1/usr/local\" -x"
    mmdebstrap --quiet --variant=minbase --include="$PACKAGES" \
        --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        --customize-hook="mkdir -p \"\$1/usr/local\" && $copy_python" \
        --customize-hook='chroot "$1" ldconfig' \
        --customize-hook='chroot "$1" /usr/local/bin/python3.11 -m ensurepip --default-pip >/dev/null' \
        --customize-hook="cp '$CA_BUNDLE' \"\$1/etc/ssl/certs/ca-certificates.crt\"" \
        --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
        bookworm "$BASE_DIR/rootfs.tar" \
        "deb $MIRROR bookworm main" "deb $MIRROR bookworm-updates main" \
        "deb $SECURITY_MIRROR bookworm-security main" >&2 ||
        die "mmdebstrap failed"
    cat >"$BASE_DIR/Containerfile" <<EOF
FROM scratch
ADD rootfs.tar /
ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin \\
    LANG=C.UTF-8 \\
    PYTHON_VERSION=$PYTHON_VERSION \\
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \\
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt
LABEL org.opencontainers.image.description="Local stand-in for $BASE_REF (Debian bookworm + CPython $PYTHON_VERSION), built by scripts/cluster/build-images.sh"
CMD ["python3"]
EOF
    "${BUILDAH[@]}" rmi --force "$BASE_REF" >/dev/null 2>&1 || true
    "${BUILDAH[@]}" bud --quiet --isolation chroot --pull=never -t "$BASE_REF" \
        -f "$BASE_DIR/Containerfile" "$BASE_DIR" >&2 || die "building the stand-in image failed"
    rm -f "$BASE_DIR/rootfs.tar"
    echo "$BASE_REF stand-in: bookworm + CPython $PYTHON_VERSION, built $(date -u +%FT%TZ)" >"$BASE_DIR/.complete"
    log "stand-in base image done in $((SECONDS - START))s"
fi
"${BUILDAH[@]}" inspect --type image "$BASE_REF" >/dev/null 2>&1 || {
    rm -f "$BASE_DIR/.complete"
    die "the stand-in $BASE_REF is missing from the image store; run again to rebuild it"
}

# -- 2. the Planboard image (the unchanged Dockerfile) -----------------------------------
step=$SECONDS
# The builder stage first, under a tag of its own: its layers (uv and the dependencies,
# the slow part) are then never "dangling", so the prune below keeps them for the next run.
for target in builder runtime; do
    tag=$IMAGE_REF
    [[ $target == builder ]] && tag=localhost/planboard-builder-cache:latest
    "${BUILDAH[@]}" bud --isolation chroot --pull=never --layers --target "$target" -t "$tag" \
        -f "$SOURCE/Dockerfile" "$SOURCE" >>"$ROOT/planboard-build.log" 2>&1 || {
        tail -40 "$ROOT/planboard-build.log" >&2
        die "building the Planboard image ($target stage) failed; log $ROOT/planboard-build.log"
    }
done
log "Planboard image $IMAGE_REF built in $((SECONDS - step))s (log $ROOT/planboard-build.log)"

# -- 3. the pause image --------------------------------------------------------------------
pause_ctx=$(mktemp -d)
trap 'cleanup; rm -rf "$pause_ctx"' EXIT
cp "$PAUSE_BIN" "$pause_ctx/pause"
printf 'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n' >"$pause_ctx/Containerfile"
"${BUILDAH[@]}" bud --quiet --isolation chroot --pull=never --layers -t "$PAUSE_REF" \
    -f "$pause_ctx/Containerfile" "$pause_ctx" >&2 || die "building the pause image failed"

# -- export -------------------------------------------------------------------------------
# One archive per image ID in the cache (written once), hard-linked into OUT: a warm run
# whose images did not change exports nothing, and a concurrent build of other code can
# never replace the archive this run's OUT names.
mkdir -p "$OUT" "$ROOT/archives"
keep=()
export_image() { # ref, file name in OUT
    local id archive
    id=$("${BUILDAH[@]}" images --no-trunc --quiet "$1" | head -1)
    id=${id#sha256:}
    [[ -n "$id" ]] || die "no image $1 after the build"
    archive="$ROOT/archives/$id.tar"
    if [[ ! -f "$archive" ]]; then
        rm -f "$archive.tmp"
        "${BUILDAH[@]}" push --quiet "$1" "oci-archive:$archive.tmp:$1" >&2
        mv "$archive.tmp" "$archive"
    fi
    rm -f "$OUT/$2"
    ln "$archive" "$OUT/$2" 2>/dev/null || cp "$archive" "$OUT/$2"
    keep+=("$archive")
}
export_image "$IMAGE_REF" planboard.tar
export_image "$PAUSE_REF" pause.tar
# Archives and layers nothing refers to any more (the code of earlier builds).
for archive in "$ROOT"/archives/*.tar; do
    [[ " ${keep[*]} " == *" $archive "* ]] || rm -f "$archive"
done
"${BUILDAH[@]}" rmi --prune >/dev/null 2>&1 || true
log "images ready in $OUT after $((SECONDS - START))s"
echo "$OUT"
