#!/usr/bin/env bash
# make test-systemd: the units under a real systemd (tests/systemd/test_units_booted.py).
#
# 1. Installs systemd-nspawn and debootstrap with apt-get if they are missing.
# 2. Builds, once, a minimal Debian tree holding /opt/chat/venv with the pinned
#    dependencies, cached in $CHAT_TEST_CACHE (default /var/cache/chat-test/systemd-root)
#    under a hash of what it holds (the debootstrap recipe, the lock file,
#    pyproject.toml): a tree whose hash no longer matches is rebuilt, the old one removed.
# 3. Builds the project's wheel from the working tree (committed or not).
# 4. Runs the pytest module, which boots the cached tree with `systemd-nspawn -b` on a
#    throw-away overlay (the cache is never written to), installs the wheel and the units
#    and checks them; then prints the total time.
# `deploy/test-systemd.sh --prepare` does steps 1 and 2 only (e.g. ahead of a timed run).
# Needs root (debootstrap, systemd-nspawn). The first run downloads ~300 MB of Debian
# packages and takes 2-3 minutes more than the later ones.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)

# What a host runs: the hashed lock of the runtime dependencies (`make lock`), exactly its
# packages, every file checked.
LOCK=${CHAT_LOCK:-requirements.lock}
CACHE=${CHAT_TEST_CACHE:-/var/cache/chat-test/systemd-root}
MIRROR=${CHAT_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
PACKAGES=systemd,systemd-sysv,dbus,libnss-systemd,python3,python3-venv
VENV_PIP=.venv/bin/pip

say() { printf 'test-systemd: %s\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
    say "needs root (debootstrap and systemd-nspawn): run it as root"
    exit 2
fi
if ! command -v systemd-nspawn >/dev/null || ! command -v debootstrap >/dev/null; then
    say "installing systemd-container and debootstrap"
    apt-get update
    apt-get install -y systemd-container debootstrap
fi

hash_of() { sha256sum | cut -c1-16; }
base_key=$(printf '%s\n' minbase "$SUITE" "$MIRROR" "$PACKAGES" | hash_of)
root_key=$(cat <(echo "$base_key") "$LOCK" pyproject.toml | hash_of)
base=$CACHE/base-$base_key
root=$CACHE/root-$root_key
wheels=$CACHE/wheels-$root_key
mkdir -p "$CACHE"
# One run at a time per cache: a second waits rather than rebuild the tree under the first.
exec 9>"$CACHE/.lock"
flock 9

# The source as it is in the working tree: tracked and new files, not ignored ones.
scratch=$(mktemp -d /tmp/chat-test-systemd.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
mkdir "$scratch/src" "$scratch/wheel"
git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf - | tar -C "$scratch/src" -xf -

pinned=(--require-hashes -r /mnt/lock.txt)
wheel_args=(--require-hashes -r "$LOCK")

if [ ! -d "$base" ]; then
    say "building the Debian tree $base (debootstrap, once)"
    rm -rf "$CACHE"/base-* "$CACHE"/root-* "$CACHE"/wheels-*
    debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$base.tmp" "$MIRROR" >&2
    mv "$base.tmp" "$base"
fi
if [ ! -d "$root" ]; then
    say "installing the pinned dependencies into $root:/opt/chat/venv (once per lock)"
    rm -rf "$CACHE"/root-* "$CACHE"/wheels-*
    # Resolved here, with this machine's pip configuration; installed offline inside.
    "$VENV_PIP" wheel -q -w "$wheels.tmp" "${wheel_args[@]}"
    mv "$wheels.tmp" "$wheels"
    cp -a --reflink=auto "$base" "$root.tmp"
    systemd-nspawn -q --register=no --keep-unit -D "$root.tmp" \
        --bind-ro="$wheels":/mnt/wheels --bind-ro="$(realpath "$LOCK")":/mnt/lock.txt --pipe \
        sh -c 'python3 -m venv /opt/chat/venv &&
            /opt/chat/venv/bin/pip install -q --no-index --find-links /mnt/wheels "$@"' \
        sh "${pinned[@]}" >&2
    mv "$root.tmp" "$root"
fi

if [ "${1:-}" = --prepare ]; then
    say "tree $root ready in $(($(date +%s) - started)) s"
    exit 0
fi
"$VENV_PIP" wheel -q --no-deps -w "$scratch/wheel" "$scratch/src"
say "tree $root, wheel $(basename "$scratch"/wheel/*.whl)"
status=0
CHAT_SYSTEMD_ROOT=$root CHAT_SYSTEMD_WHEELS=$scratch/wheel CHAT_SYSTEMD_LOCK=$LOCK \
    .venv/bin/pytest -v -p no:cacheprovider --durations=5 tests/systemd || status=$?
say "total $(($(date +%s) - started)) s (exit $status)"
exit $status
