#!/usr/bin/env bash
# What the VM test tier needs on a Debian 12 machine (as root): qemu to boot its VM, and
# Debian's vagrant to validate vagrant/Vagrantfile. The image build uses mmdebstrap and
# mkfs.ext4 (tests/host/install-test-deps.sh, e2fsprogs).
set -euo pipefail
packages=(qemu-system-x86 vagrant e2fsprogs openssh-client curl)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
