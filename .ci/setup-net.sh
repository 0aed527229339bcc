#!/usr/bin/env bash
# Installs the tools the firework-net tests need: nft (nftables) and ip (iproute2).
# Idempotent: installs only what is missing. Needs root.
set -euo pipefail

missing=()
command -v nft >/dev/null 2>&1 || missing+=(nftables)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)

if [ "${#missing[@]}" -gt 0 ]; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

# The TUN module provides /dev/net/tun; load it when the device is missing.
if [ ! -e /dev/net/tun ]; then
    modprobe tun
fi
