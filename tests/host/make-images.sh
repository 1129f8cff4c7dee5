#!/usr/bin/env bash
# Builds (or reuses from the cache) what a host test needs and cannot fetch once it runs
# in its own network namespace:
#   ROOTFS: a Debian 12 root filesystem with systemd and every package install.sh wants,
#   BASE:   the tarball install.sh imports as localhost/podku/python:3.11.
#   NODE:   the tarball the builder tests import as localhost/podku/node:18.
#   POSTGRES: the tarball the service tests import as localhost/podku/postgres:15 (the
#           recipe of podku's postgres.BASE: postgresql-15, its default cluster removed).
#   REDIS:  likewise localhost/podku/redis:7 (redis.BASE: redis-server).
# All are cached under $PODKU_TEST_CACHE keyed by a hash of their inputs.
# Prints the paths, one per line.
set -euo pipefail

cache=${PODKU_TEST_CACHE:-/var/cache/podku-test}
mirror=${PODKU_TEST_MIRROR:-http://deb.debian.org/debian}
suite=bookworm
host_packages=(
  systemd systemd-sysv dbus libpam-systemd dbus-user-session ca-certificates
  podman caddy uidmap slirp4netns runc fuse-overlayfs mmdebstrap libcap2-bin
  git openssh-server openssh-client python3 python3-venv python3-pip
  python3-click python3-jinja2 python3-pystemd python3-setuptools python3-idna python3-yaml python3-bcrypt
  procps iproute2 curl less
  pebble openssl
  catatonit
)
# catatonit: `podman kube play` (tests/host/test_kube_export.py) builds its pods' pause image from it.
# python3-flask and gunicorn: the POST-body test app (a view that ignores the body).
base_packages=(python3 python3-venv python3-pip ca-certificates python3-flask gunicorn)

# The Node builder's base (podku base:build node builds the same on a real host).
node_base_packages=(nodejs npm ca-certificates)

# podku's postgres.BASE (src/podku/postgres.py): the same packages and hook.
postgres_base_packages=(postgresql-15)
postgres_base_hook='rm -rf "$1"/var/lib/postgresql/15/main "$1"/etc/postgresql/15/main "$1"/usr/lib/*/libLLVM-*.so* "$1"/usr/lib/*/libz3.so* "$1"/usr/lib/postgresql/15/lib/llvmjit* "$1"/usr/lib/postgresql/15/lib/bitcode "$1"/usr/share/doc "$1"/usr/share/man "$1"/usr/share/locale "$1"/usr/share/i18n'
# podku's redis.BASE (src/podku/redis.py).
redis_base_packages=(redis-server)
redis_base_hook='rm -rf "$1"/usr/share/doc "$1"/usr/share/man "$1"/usr/share/locale'

key() { printf '%s\n' "$@" | sha256sum | cut -c1-16; }

build_rootfs() {
  local out=$1 tmp=$1.tmp
  rm -rf "$tmp"
  mmdebstrap --mode=root --variant=minbase --include="$(IFS=,; echo "${host_packages[*]}")" \
    "$suite" "$tmp" "$mirror" >&2
  cp /etc/ssl/certs/ca-certificates.crt "$tmp/usr/local/share/ca-certificates/build-host.crt"
  chroot "$tmp" update-ca-certificates >&2
  # The test host has no route out: a booted system must not wait for networking.
  rm -f "$tmp/etc/resolv.conf"; : > "$tmp/etc/resolv.conf"
  systemctl --root="$tmp" disable caddy.service ssh.service >&2 || true
  mv -T "$tmp" "$out"
}

# A root filesystem as a tarball for `podman import`: build_tar OUT EXTRA_HOOK PACKAGE...
build_tar() {
  local out=$1 hook=$2 tmp=$1.tmp
  shift 2
  local hooks=(--customize-hook='rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/*')
  [ -z "$hook" ] || hooks+=(--customize-hook="$hook")
  mmdebstrap --mode=root --format=tar --variant=apt --include="$(IFS=,; echo "$*")" "${hooks[@]}" \
    "$suite" "$tmp" "$mirror" >&2
  mv -T "$tmp" "$out"
}

mkdir -p "$cache"
# Concurrent runs (two checkouts on one machine) build one copy, one after the other.
exec 9>"$cache/.lock"
flock 9
rootfs=$cache/rootfs-$(key "$suite" "$mirror" "${host_packages[@]}" v2)
base=$cache/base-$(key "$suite" "$mirror" "${base_packages[@]}" v2).tar
[ -d "$rootfs" ] || build_rootfs "$rootfs"
[ -f "$base" ] || build_tar "$base" "" "${base_packages[@]}"
node_base=$cache/node-base-$(key "$suite" "$mirror" "${node_base_packages[@]}" v1).tar
[ -f "$node_base" ] || build_tar "$node_base" "" "${node_base_packages[@]}"
postgres_base=$cache/postgres-base-$(key "$suite" "$mirror" "${postgres_base_packages[@]}" "$postgres_base_hook" v1).tar
[ -f "$postgres_base" ] || build_tar "$postgres_base" "$postgres_base_hook" "${postgres_base_packages[@]}"
redis_base=$cache/redis-base-$(key "$suite" "$mirror" "${redis_base_packages[@]}" "$redis_base_hook" v1).tar
[ -f "$redis_base" ] || build_tar "$redis_base" "$redis_base_hook" "${redis_base_packages[@]}"
echo "$rootfs"
echo "$base"
echo "$node_base"
echo "$postgres_base"
echo "$redis_base"
