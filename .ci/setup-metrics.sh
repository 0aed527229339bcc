#!/usr/bin/env bash
# Installs Debian's Python Prometheus client, whose OpenMetrics parser the firework-metrics
# tests run on the agent's scrape output. Idempotent: installs only when the module is
# missing. The tests run /usr/bin/python3, because a python3 earlier on PATH (pyenv) does
# not see Debian packages.
set -euo pipefail

if /usr/bin/python3 -c 'import prometheus_client.openmetrics.parser' >/dev/null 2>&1; then
    echo "python3 prometheus_client already installed"
else
    echo "installing python3-prometheus-client with apt-get"
    apt-get update -qq
    apt-get install -y -qq python3-prometheus-client
fi
