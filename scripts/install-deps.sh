#!/usr/bin/env bash
# Installs the Debian packages Genflow needs, when they are missing. Safe to run again.
# (python3 runs the local HTTP test server, Tests/Fixtures/fake_provider.py; python3-websockets is the
# WebSocket client of the API tests, Tests/Fixtures/ws_client.py; chromium, headless, is the browser of
# the dashboard test, Tests/Fixtures/dashboard_browser.py; python3-yaml and python3-jsonschema check the
# shipped pipelines against the editor schema, Tests/Fixtures/validate_schema.py; nginx is the reverse
# proxy of the deployment test (etc/nginx/genflow.conf); python3-jwt and python3-cryptography mint an
# identity provider's tokens (Tests/Fixtures/idp.py); systemd brings systemd-analyze, which checks
# etc/systemd/genflow.service.)
set -euo pipefail

packages=(libyaml-dev libpq-dev libcurl4-openssl-dev libwebsockets-dev postgresql pkg-config python3 python3-websockets python3-yaml python3-jsonschema python3-jwt python3-cryptography chromium nginx systemd)
missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

echo "Installing missing packages: ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
