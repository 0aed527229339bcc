#!/usr/bin/env bash
# Installs Garage, the S3-compatible server that the firework-store tests start on loopback.
# Idempotent: does nothing when a `garage` binary is already on PATH or in ~/.cargo/bin.
set -euo pipefail

GARAGE_VERSION="2.5.0"
CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"

if command -v garage >/dev/null 2>&1; then
    echo "garage already installed: $(command -v garage)"
    exit 0
fi
if [ -x "$CARGO_BIN/garage" ]; then
    echo "garage already installed: $CARGO_BIN/garage"
    exit 0
fi

# Building from crates.io takes about 10 minutes on 2 cores.
echo "installing garage $GARAGE_VERSION with cargo"
cargo install garage --locked --version "$GARAGE_VERSION"
