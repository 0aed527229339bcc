#!/usr/bin/env bash
# Installs what the emulator's guest-mode tests (cargo test -p firework-emulator --test guest)
# need: busybox-static and e2fsprogs for scripts/build-example-rootfs.sh, iproute2 for the
# test namespaces, and nftables for the DNAT test. Idempotent: installs only what is missing.
set -euo pipefail

missing=()
dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
command -v mkfs.ext4 >/dev/null 2>&1 || missing+=(e2fsprogs)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v nft >/dev/null 2>&1 || missing+=(nftables)

if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
    echo "guest-mode test packages already installed"
fi

# The guest needs loop devices and TAPs; report early when the kernel lacks them.
for device in /dev/loop-control /dev/net/tun; do
    if [ ! -e "$device" ]; then
        echo "setup-emulator-guest: $device is missing (modprobe loop / modprobe tun)" >&2
        exit 1
    fi
done
