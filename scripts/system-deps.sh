#!/usr/bin/env bash
# Make sure the Debian packages the project needs are installed.
#
#   scripts/system-deps.sh           as root: install what is missing (apt-get);
#                                    as anyone else: list what is missing and how to install it.
#   scripts/system-deps.sh --check   only report; install nothing.
#
# Exit status: 0 when every package is installed (or was just installed), 1 when some are
# missing, 2 on bad usage.
set -euo pipefail

# The Debian packages the project needs: add a package by adding a line.
PACKAGES=(
    busybox      # udhcpc: the DHCP client of the test bed's simulated devices
    ca-certificates
    curl         # scripts/fetch-mermaid.sh; the docs' runnable snippets (tests/docs/test_snippets.py)
    chromium     # the browser the console's Playwright tests drive (never a downloaded one)
    debootstrap  # the deployment test's Debian bookworm root (make deploy-test)
    dnsmasq-base # DHCP on the onboarding network (the test bed's too); no DNS service started
    iproute2     # network namespaces, bridges and veths of the test bed
    make
    mosquitto    # the target network's MQTT broker (tests start their own on loopback)
    python3
    python3-venv
    sqlite3
    systemd-container # systemd-nspawn: boots the deployment test's root (make deploy-test)
)

usage() {
    echo "usage: $0 [--check]" >&2
    exit 2
}

check_only=false
case "${1-}" in
    "") ;;
    --check) check_only=true ;;
    -h | --help)
        sed -n '2,9s/^# \{0,1\}//p' "$0"
        exit 0
        ;;
    *) usage ;;
esac
[ "$#" -le 1 ] || usage

if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "system-deps: no dpkg-query, so this is not Debian; cannot check. The project expects" \
        "the equivalents of these Debian packages: ${PACKAGES[*]}" >&2
    exit 0
fi

missing_packages() {
    local pkg status
    for pkg in "${PACKAGES[@]}"; do
        status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
        [ "$status" = installed ] || printf '%s\n' "$pkg"
    done
}

mapfile -t missing < <(missing_packages)
if [ "${#missing[@]}" -eq 0 ]; then
    echo "system-deps: all installed (${PACKAGES[*]})"
    exit 0
fi

install_cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"

if "$check_only"; then
    echo "system-deps: missing Debian packages: ${missing[*]}" >&2
    echo "system-deps: install them as root with: $install_cmd" >&2
    exit 1
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "system-deps: missing Debian packages: ${missing[*]}" >&2
    echo "system-deps: not root, so not installing them. Run as root:" >&2
    echo "    sudo sh -c '$install_cmd'" >&2
    exit 1
fi

echo "system-deps: installing ${missing[*]}"
apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"

mapfile -t still_missing < <(missing_packages)
if [ "${#still_missing[@]}" -ne 0 ]; then
    echo "system-deps: still missing after apt-get install: ${still_missing[*]}" >&2
    exit 1
fi
echo "system-deps: installed ${missing[*]}"
