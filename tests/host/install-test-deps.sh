#!/usr/bin/env bash
# What booting test hosts and running the tests needs on a Debian 12 machine (as root).
set -euo pipefail
packages=(systemd-container mmdebstrap iproute2 git openssh-client curl ca-certificates
          python3 python3-pytest python3-click python3-jinja2 python3-pystemd python3-idna python3-bcrypt uidmap
          python3-pip python3-venv python3-yaml shellcheck
          docker-registry)  # its binary is copied into test hosts (tests/host/registry.py)
# npm (the builder tests pack one package with it): the machine's own nodejs ships it; Debian's
# npm package only where there is none.
command -v npm >/dev/null || packages+=(npm)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
