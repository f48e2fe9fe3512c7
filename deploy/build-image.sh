#!/usr/bin/env bash
# Build the chat container image on a machine with no reachable container registry.
#
#   deploy/build-image.sh
#
# 1. Makes the base image localhost/debian-python:bookworm with debootstrap, unless an image
#    of that name made from the same recipe (suite, packages, mirror) already exists.
# 2. Builds localhost/chat:latest from the repository's Containerfile, in the docker image
#    format (the OCI format has no HEALTHCHECK; podman drops it with a warning).
# 3. Smoke-tests the image without `podman run` (which does not work on every host): mounts
#    it and runs `chatd --help`, `chatctl --help` and `chat-director --help` in a chroot as
#    the image's user. Any failure there fails the script.
#
# Safe to run again: an existing base image is reused and the build uses podman's cache.
# Needs root (debootstrap, chroot, podman image mount). Installs debootstrap and podman
# with apt-get when they are missing (what running containers needs besides: setup-podman.sh).
#
# Environment: BASE_IMAGE, IMAGE, SUITE, MIRROR override the defaults below;
# REBUILD_BASE=1 rebuilds the base image even if it exists; APT_LOCK=FILE runs apt-get
# under `flock FILE` (machines where several jobs install packages at once).
set -euo pipefail

BASE_IMAGE=${BASE_IMAGE:-localhost/debian-python:bookworm}
IMAGE=${IMAGE:-localhost/chat:latest}
SUITE=${SUITE:-bookworm}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
REBUILD_BASE=${REBUILD_BASE:-0}
APT_LOCK=${APT_LOCK:-}
PACKAGES=python3,python3-venv
# What the base image is made from; stored as a label so that a base made otherwise is
# remade rather than reused.
RECIPE="debootstrap --variant=minbase --include=$PACKAGES $SUITE $MIRROR"
COMMANDS=(chatd chatctl chat-director)
VENV=/opt/chat/venv

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

say() { printf '==> %s\n' "$*"; }
die() { printf 'build-image: error: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "run as root (debootstrap, chroot and 'podman image mount' need it)"
[[ -f Containerfile ]] || die "no Containerfile in $repo"

# --- tools -------------------------------------------------------------------------------
apt_updated=0
apt() {
    if [[ -n $APT_LOCK ]]; then
        DEBIAN_FRONTEND=noninteractive flock "$APT_LOCK" apt-get "$@"
    else
        DEBIAN_FRONTEND=noninteractive apt-get "$@"
    fi
}
need() { # need COMMAND PACKAGE
    command -v "$1" >/dev/null 2>&1 && return 0
    command -v apt-get >/dev/null 2>&1 || die "$1 is missing and there is no apt-get to install $2"
    if [[ $apt_updated -eq 0 ]]; then
        say "apt-get update"
        apt update -qq
        apt_updated=1
    fi
    say "installing $2"
    apt install -y -qq --no-install-recommends "$2" >/dev/null
    command -v "$1" >/dev/null 2>&1 || die "installed $2 but $1 is still not on PATH"
}
need podman podman
need debootstrap debootstrap

# --- cleanup of whatever this run creates ------------------------------------------------
rootfs=""
mounted=0
cleanup() {
    if [[ $mounted -eq 1 ]]; then
        podman image unmount "$IMAGE" >/dev/null 2>&1 || true
    fi
    if [[ -n $rootfs && -d $rootfs ]]; then
        rm -rf --one-file-system "$rootfs"
    fi
}
trap cleanup EXIT

# --- 1. base image -----------------------------------------------------------------------
recipe_of() { podman image inspect --format '{{index .Labels "org.chat.base-recipe"}}' "$1"; }
if [[ $REBUILD_BASE != 1 ]] && podman image exists "$BASE_IMAGE" \
        && [[ $(recipe_of "$BASE_IMAGE") == "$RECIPE" ]]; then
    say "base image $BASE_IMAGE exists, made by: $RECIPE; reusing it (REBUILD_BASE=1 to rebuild)"
else
    rootfs=$(mktemp -d /var/tmp/chat-rootfs.XXXXXX)
    say "debootstrap $SUITE (minbase + $PACKAGES) into $rootfs"
    started=$SECONDS
    if ! debootstrap --variant=minbase --include="$PACKAGES" \
            "$SUITE" "$rootfs" "$MIRROR" >"$rootfs.log" 2>&1; then
        tail -n 30 "$rootfs.log" >&2
        rm -f "$rootfs.log"
        die "debootstrap failed (log above)"
    fi
    rm -f "$rootfs.log"
    # Package caches are of no use in an image.
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    say "debootstrap took $((SECONDS - started)) s; importing as $BASE_IMAGE"
    tar -C "$rootfs" -c . | podman import --change 'ENV=LANG=C.UTF-8' \
        --change "LABEL org.chat.base-recipe=\"$RECIPE\"" - "$BASE_IMAGE" >/dev/null
    rm -rf --one-file-system "$rootfs"
    rootfs=""
fi

# --- 2. the image ------------------------------------------------------------------------
# chroot isolation: RUN steps fail with the default isolation on this kind of host. The
# host's CA bundle is mounted so that pip trusts whatever the host trusts.
say "building $IMAGE from Containerfile (base $BASE_IMAGE)"
started=$SECONDS
podman build --isolation chroot --format docker \
    -v /etc/ssl/certs:/etc/ssl/certs:ro \
    --build-arg "BASE=$BASE_IMAGE" \
    -t "$IMAGE" -f Containerfile .
say "podman build took $((SECONDS - started)) s"

# --- 3. smoke test -----------------------------------------------------------------------
say "smoke-testing $IMAGE"
mnt=$(podman image mount "$IMAGE")
mounted=1
[[ -n $mnt && -d $mnt ]] || die "podman image mount gave no directory"

user=$(podman image inspect --format '{{.Config.User}}' "$IMAGE")
[[ -n $user && $user != root && $user != 0 && $user != 0:* ]] \
    || die "image runs as root (USER is '${user:-unset}')"
userspec=$user
[[ $userspec == *:* ]] || userspec="$user:$user"
[[ $userspec =~ ^[0-9]+:[0-9]+$ ]] || die "image USER '$user' is not numeric uid:gid"

failed=0
for cmd in "${COMMANDS[@]}"; do
    exe=$VENV/bin/$cmd
    if [[ ! -x $mnt$exe ]]; then
        printf 'build-image: FAIL %s: not in the image\n' "$exe" >&2
        failed=1
        continue
    fi
    if out=$(chroot --userspec="$userspec" "$mnt" /usr/bin/env -i \
            PATH="$VENV/bin:/usr/bin:/bin" LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1 \
            "$exe" --help 2>&1); then
        printf '    ok   %s --help (as %s)\n' "$exe" "$userspec"
    else
        printf 'build-image: FAIL %s --help exited non-zero:\n%s\n' "$exe" "$out" >&2
        failed=1
    fi
done
podman image unmount "$IMAGE" >/dev/null
mounted=0
[[ $failed -eq 0 ]] || die "smoke test failed: $IMAGE is built but a command above is broken"

say "done: $IMAGE, $(podman image inspect --format "{{.Size}}" "$IMAGE" | numfmt --to=iec)B"
