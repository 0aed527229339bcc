#!/usr/bin/env bash
# Installs what the tests need (Garage, nftables, busybox...) and runs the whole test suite.
# Run as root: the networking, namespace and loop-mount tests need it and print a skip
# reason otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

for setup in .ci/setup-*.sh; do
    echo "==> $setup"
    bash "$setup"
done

echo "==> cargo test"
cargo test --workspace --no-fail-fast

# The enricher's AWS Lambda entry point is behind a cargo feature.
echo "==> cargo test -p firework-enricher --features lambda"
cargo test -p firework-enricher --features lambda --no-fail-fast
