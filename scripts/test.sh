#!/usr/bin/env bash
# Installs what the tests need (Garage, nftables, busybox...) and runs the whole test suite.
# Run as root: the networking, namespace and loop-mount tests need it and print a skip
# reason otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
# Incremental build data only helps repeated local builds; in a full run it costs disk.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

for setup in .ci/setup-*.sh; do
    echo "==> $setup"
    bash "$setup"
done

# The emulator's guest mode and the end-to-end tests boot this image.
if [ "$(id -u)" -eq 0 ]; then
    echo "==> scripts/build-example-rootfs.sh"
    bash scripts/build-example-rootfs.sh build/example-rootfs.ext4
else
    echo "skipping the example guest image: building it needs root to install busybox-static"
fi

echo "==> cargo test"
cargo test --workspace --no-fail-fast

# The enricher's and the scheduler's AWS Lambda entry points are behind a cargo feature.
echo "==> cargo test --features lambda"
cargo test -p firework-enricher -p firework-scheduler --features lambda --no-fail-fast
