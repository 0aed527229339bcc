#!/bin/bash
# Prepares the firework-vmm tests: they run the Firecracker API emulator binary
# (target/debug/fc-emulator), and the jailer tests use unshare(1) and chroot(1).
set -euo pipefail

cd "$(dirname "$0")/.."

for tool in unshare chroot; do
  if ! command -v "$tool" >/dev/null; then
    echo "setup-vmm: $tool is missing, installing util-linux and coreutils" >&2
    apt-get install -y util-linux coreutils
    break
  fi
done

# Cargo rebuilds only what changed, so this is cheap when the binary is current.
cargo build -p firework-emulator
