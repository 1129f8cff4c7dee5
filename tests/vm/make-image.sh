#!/usr/bin/env bash
# Builds (or reuses from the cache) the VM test tier's disk image: Debian 12 with its kernel,
# systemd, sshd and every package install.sh wants, so a VM with no route out (qemu's
# restrict=on) installs podku offline. Cached under $PODKU_TEST_CACHE, keyed by the package
# list and this script. podku itself is not in the image: each test VM provisions it with
# vagrant/provision.sh (install.sh), the Vagrantfile's provisioning too.
# Prints: the disk image (raw ext4), the kernel, the initrd, root's ssh key.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${PODKU_TEST_CACHE:-/var/cache/podku-test}
mirror=${PODKU_TEST_MIRROR:-http://deb.debian.org/debian}
suite=bookworm
size=6G

# install.sh's own list (every package it would otherwise fetch), read from install.sh itself.
mapfile -t install_packages < <(bash -c 'source <(sed -n "/^PACKAGES=(/,/)/p" "$1"); printf "%s\n" "${PACKAGES[@]}"' _ "$repo/install.sh")
vm_packages=(
  linux-image-amd64 systemd systemd-sysv udev dbus libpam-systemd dbus-user-session
  openssh-server ca-certificates procps iproute2 curl less kmod
  "${install_packages[@]}"
)

key() { cat "$here/make-image.sh"; printf '%s\n' "$suite" "$mirror" "${vm_packages[@]}"; }

build() {
  local out=$1 tmp=$1.tmp
  rm -rf "$tmp"; mkdir -p "$tmp"
  mmdebstrap --mode=root --variant=minbase --include="$(IFS=,; echo "${vm_packages[*]}")" \
    "$suite" "$tmp/root" "$mirror" >&2
  local root=$tmp/root
  cp /etc/ssl/certs/ca-certificates.crt "$root/usr/local/share/ca-certificates/build-host.crt"
  chroot "$root" update-ca-certificates >&2
  # qemu's user network, restricted: DHCP gives 10.0.2.15 and nothing beyond the VM answers.
  printf '[Match]\nName=en*\n\n[Network]\nDHCP=ipv4\n' > "$root/etc/systemd/network/20-dhcp.network"
  rm -f "$root/etc/resolv.conf"; : > "$root/etc/resolv.conf"
  printf '/dev/vda / ext4 rw,relatime 0 1\n' > "$root/etc/fstab"
  echo podku-vm > "$root/etc/hostname"
  systemctl --root="$root" enable systemd-networkd.service ssh.service >&2
  # Debian's caddy package starts a system Caddy; install.sh stops it, as on a real VPS.
  ssh-keygen -q -t ed25519 -N '' -C podku-vm-root -f "$tmp/root_key"
  install -d -m 0700 "$root/root/.ssh"
  install -m 0600 "$tmp/root_key.pub" "$root/root/.ssh/authorized_keys"
  cp "$root"/boot/vmlinuz-* "$tmp/vmlinuz"
  cp "$root"/boot/initrd.img-* "$tmp/initrd.img"
  rm -rf "$root"/var/cache/apt/archives/*.deb
  truncate -s "$size" "$tmp/disk.img"
  mkfs.ext4 -q -L podku-vm -d "$root" "$tmp/disk.img" >&2
  rm -rf "$root"
  mv -T "$tmp" "$out"
}

mkdir -p "$cache"
exec 9>"$cache/.vm-lock"
flock 9
image=$cache/vm-$(key | sha256sum | cut -c1-16)
[ -d "$image" ] || build "$image"
printf '%s\n' "$image/disk.img" "$image/vmlinuz" "$image/initrd.img" "$image/root_key"
