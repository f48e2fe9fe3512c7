#!/usr/bin/env bash
# Installs, from Debian's packages and only when missing, what running the chat containers
# and pods needs besides podman itself (tests/container, deploy/README.md):
#   runc       the OCI runtime: crun fails on some hosts' cgroup layout, runc works there
#   catatonit  the init of the pause image that every pod's infra container runs
#   dnsname    name resolution on CNI networks (the director's alias in `podman kube play`);
#              podman with the netavark backend has it built in (aardvark-dns)
# APT_LOCK=FILE runs apt-get under `flock FILE` (machines where several jobs install at once).
set -euo pipefail

packages=()
command -v podman >/dev/null 2>&1 || packages+=(podman)
command -v runc >/dev/null 2>&1 || packages+=(runc)
[[ -x /usr/libexec/podman/catatonit || -x /usr/bin/catatonit ]] || packages+=(catatonit)
if ! command -v podman >/dev/null 2>&1 \
        || [[ $(podman info --format '{{.Host.NetworkBackend}}') == cni ]]; then
    [[ -x /usr/lib/cni/dnsname ]] || packages+=(golang-github-containernetworking-plugin-dnsname)
fi
[[ ${#packages[@]} -eq 0 ]] && exit 0

[[ $(id -u) -eq 0 ]] || { echo "setup-podman: run as root to install ${packages[*]}" >&2; exit 1; }
apt() {
    if [[ -n ${APT_LOCK:-} ]]; then
        DEBIAN_FRONTEND=noninteractive flock "$APT_LOCK" apt-get "$@"
    else
        DEBIAN_FRONTEND=noninteractive apt-get "$@"
    fi
}
echo "==> installing ${packages[*]}"
apt update -qq
apt install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
