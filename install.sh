#!/usr/bin/env bash
# podku's host installer: run once as root on a fresh Debian 12+ / Ubuntu 24.04+ host, from
# a plain copy of the source tree. Non-interactive and idempotent: a second run changes
# nothing and succeeds.
#
#   ./install.sh [--domain podku.localhost] [--ssh-key FILE] [--user podku]
#                     [--http-port 80] [--base-image-tar FILE] [--example]
#                     [--tls auto|internal|off] [--acme-email ADDR] [--acme-ca URL --acme-ca-root FILE]
set -euo pipefail

SOURCE_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DEPLOY_USER=podku
DOMAIN=podku.localhost
HTTP_PORT=80
SSH_KEY=
BASE_IMAGE_TAR=
DEPLOY_EXAMPLE=no
# HTTPS (domains): auto = ACME for public names, Caddy's internal CA for .localhost/.test/...
TLS_MODE=auto
ACME_EMAIL=
ACME_CA=
ACME_CA_ROOT=
BASE_IMAGE=localhost/podku/python:3.11
BASE_SUITE=bookworm
BASE_MIRROR=http://deb.debian.org/debian
PRIVATE_CADDY=/usr/local/lib/podku/caddy
PROXY_CHANGED=no   # a new Caddy binary: the running one is restarted to use it
OLD_SYSCTL_FILE=/etc/sysctl.d/50-podku.conf
PACKAGES=(podman caddy uidmap slirp4netns runc fuse-overlayfs mmdebstrap libcap2-bin
          dbus-user-session git openssh-server python3 python3-venv
          python3-pip python3-click python3-jinja2 python3-pystemd python3-setuptools python3-idna python3-yaml python3-bcrypt
          ca-certificates)

say() { printf -- '-----> %s\n' "$*"; }
detail() { printf -- '       %s\n' "$*"; }
die() { printf -- ' !     %s\n' "$*" >&2; exit 1; }

usage() {
  sed -n '2,8p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  exit "${1:-0}"
}

parse_args() {
  while [ $# -gt 0 ]; do
    case $1 in
      --domain) DOMAIN=${2:?--domain needs a value}; shift 2 ;;
      --ssh-key) SSH_KEY=${2:?--ssh-key needs a file}; shift 2 ;;
      --user) DEPLOY_USER=${2:?--user needs a name}; shift 2 ;;
      --http-port) HTTP_PORT=${2:?--http-port needs a number}; shift 2 ;;
      --base-image-tar) BASE_IMAGE_TAR=${2:?--base-image-tar needs a file}; shift 2 ;;
      --example) DEPLOY_EXAMPLE=yes; shift ;;
      --tls) TLS_MODE=${2:?--tls needs auto, internal or off}; shift 2 ;;
      --acme-email) ACME_EMAIL=${2:?--acme-email needs an address}; shift 2 ;;
      --acme-ca) ACME_CA=${2:?--acme-ca needs a directory URL}; shift 2 ;;
      --acme-ca-root) ACME_CA_ROOT=${2:?--acme-ca-root needs a PEM file}; shift 2 ;;
      -h|--help) usage 0 ;;
      *) printf ' !     unknown option %s\n' "$1" >&2; usage 2 >&2 ;;
    esac
  done
  [[ $DEPLOY_USER =~ ^[a-z_][a-z0-9_-]{0,30}$ ]] || die "invalid user name: $DEPLOY_USER"
  [[ $HTTP_PORT =~ ^[0-9]{1,5}$ ]] && [ "$HTTP_PORT" -ge 1 ] && [ "$HTTP_PORT" -le 65535 ] \
    || die "invalid port: $HTTP_PORT"
  [[ $DOMAIN =~ ^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$ ]] || die "invalid domain: $DOMAIN"
  [ -z "$SSH_KEY" ] || [ -r "$SSH_KEY" ] || die "cannot read the ssh key $SSH_KEY"
  [ -z "$BASE_IMAGE_TAR" ] || [ -r "$BASE_IMAGE_TAR" ] || die "cannot read $BASE_IMAGE_TAR"
  check_tls_args
}

check_tls_args() {
  case $TLS_MODE in auto|internal|off) ;; *) die "invalid --tls $TLS_MODE: use auto, internal or off" ;; esac
  [ -z "$ACME_EMAIL" ] || [[ $ACME_EMAIL =~ ^[^[:space:]@]+@[^[:space:]@]+$ ]] || die "invalid --acme-email: $ACME_EMAIL"
  [ -z "$ACME_CA" ] || [[ $ACME_CA =~ ^https://[^[:space:]]+$ ]] || die "invalid --acme-ca: expected an https:// URL"
  [ -z "$ACME_CA_ROOT" ] || [ -r "$ACME_CA_ROOT" ] || die "cannot read the ACME CA root $ACME_CA_ROOT"
}

# The TLS settings, before setup loads Caddy's config: a private CA's root goes into the
# deploy user's config (Caddy runs as that user and must read it).
setup_tls() {
  local root=
  if [ -n "$ACME_CA_ROOT" ]; then
    root="$DEPLOY_HOME/.config/podku/acme-ca-root.pem"
    write_user_file "$root" 0644 < "$ACME_CA_ROOT"
  fi
  as_user "$PODKU_BIN" setup:tls --tls "$TLS_MODE" --acme-email "$ACME_EMAIL" --acme-ca "$ACME_CA" --acme-ca-root "$root"
}

check_host() {
  [ "$(id -u)" = 0 ] || die "run install.sh as root"
  [ -d /run/systemd/system ] || die "systemd is not running as PID 1 on this host: podku needs it"
  . /etc/os-release
  case "$ID" in
    debian|ubuntu) ;;
    *) die "unsupported distribution $ID: podku supports Debian 12+ and Ubuntu 24.04+" ;;
  esac
}

install_packages() {
  local missing=()
  for package in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' \
      || missing+=("$package")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    detail "packages already installed"
    return
  fi
  say "Installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Debian's caddy package starts a system-wide Caddy on :80: podku runs its own, as the
# deploy user, so that one must not hold the port.
stop_system_caddy() {
  if systemctl is-enabled --quiet caddy.service 2>/dev/null || systemctl is-active --quiet caddy.service; then
    say "Stopping the system caddy.service (podku runs Caddy as $DEPLOY_USER)"
    systemctl disable --now caddy.service >/dev/null 2>&1 || true
  fi
}

create_user() {
  if ! id "$DEPLOY_USER" >/dev/null 2>&1; then
    say "Creating user $DEPLOY_USER"
    useradd --create-home --shell /bin/bash --comment "podku deploy user" "$DEPLOY_USER"
  fi
  # '*' rather than the locked '!': sshd refuses key logins to locked accounts without PAM.
  [ "$(getent shadow "$DEPLOY_USER" | cut -d: -f2)" = '*' ] || usermod -p '*' "$DEPLOY_USER"
  DEPLOY_HOME=$(getent passwd "$DEPLOY_USER" | cut -d: -f6)
  DEPLOY_UID=$(id -u "$DEPLOY_USER")
  # Other local users must not read the apps' source (sshd's StrictModes accepts 0700).
  as_user chmod 0700 "$DEPLOY_HOME"
  grep -q "^$DEPLOY_USER:" /etc/subuid 2>/dev/null || usermod --add-subuids "$(free_id_range /etc/subuid)" "$DEPLOY_USER"
  grep -q "^$DEPLOY_USER:" /etc/subgid 2>/dev/null || usermod --add-subgids "$(free_id_range /etc/subgid)" "$DEPLOY_USER"
  leave_journal_group
  [ -e "/var/lib/systemd/linger/$DEPLOY_USER" ] || loginctl enable-linger "$DEPLOY_USER"
  wait_for "the user manager of $DEPLOY_USER" as_user test -S "/run/user/$DEPLOY_UID/bus"
  wait_for "the user manager of $DEPLOY_USER to start" user_manager_running
}

# Older installs put the deploy user in systemd-journal: it read every user's and the
# system's log. Its own journal (per-user journal files) needs no group.
leave_journal_group() {
  id -nG "$DEPLOY_USER" | tr ' ' '\n' | grep -qx systemd-journal || return 0
  gpasswd -d "$DEPLOY_USER" systemd-journal >/dev/null
  detail "removed $DEPLOY_USER from systemd-journal (processes started before keep it until a reboot)"
}

user_manager_running() {
  local state
  state=$(as_user systemctl --user is-system-running 2>/dev/null || true)
  [ "$state" = running ] || [ "$state" = degraded ]
}

free_id_range() {
  local file=$1 start=100000
  if [ -s "$file" ]; then
    start=$(awk -F: '{ end = $2 + $3; if (end > max) max = end } END { print (max > 100000 ? max : 100000) }' "$file")
  fi
  echo "$start-$((start + 65535))"
}

wait_for() {
  local what=$1; shift
  for _ in $(seq 1 150); do
    "$@" && return 0
    sleep 0.2
  done
  die "timed out waiting for $what"
}

# Code the deploy user controls (its venv, its hooks) runs in a session of its own, with no
# controlling terminal and no descriptor of root's terminal: it cannot push keystrokes
# into root's shell (TIOCSTI) nor read root's typing.
as_user() {
  if [ -t 0 ]; then as_user "$@" </dev/null
  elif [ -t 1 ]; then as_user "$@" | cat
  elif [ -t 2 ]; then { as_user "$@" 2>&1 >&3 3>&- | cat >&2; } 3>&1
  else
    (cd / && setsid --wait runuser -u "$DEPLOY_USER" -- env -i HOME="$DEPLOY_HOME" USER="$DEPLOY_USER" \
      LOGNAME="$DEPLOY_USER" PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 \
      XDG_RUNTIME_DIR="/run/user/$DEPLOY_UID" \
      DBUS_SESSION_BUS_ADDRESS="unix:path=/run/user/$DEPLOY_UID/bus" "$@")
  fi
}

# The deploy user's files are written by that user: root never writes, chowns or removes
# anything through a path in the home, where any directory may be the user's symlink.
write_user_file() {  # write_user_file PATH MODE < content; only when it changed
  local path=$1 mode=$2 tmp
  tmp=$(mktemp)
  cat > "$tmp"
  if as_user cat -- "$path" 2>/dev/null | cmp -s - "$tmp"; then
    rm -f "$tmp"
    return
  fi
  as_user sh -c 'mkdir -p -- "${1%/*}" && cat > "$1.podku-tmp" && chmod "$2" "$1.podku-tmp" &&
    mv -f -- "$1.podku-tmp" "$1"' write "$path" "$mode" < "$tmp" 2>/dev/null \
    || { rm -f "$tmp"; die "cannot write $path as $DEPLOY_USER (a directory on its way is not the user's own?)"; }
  rm -f "$tmp"
  detail "wrote $path"
}

write_root_file() {  # write_root_file PATH MODE < content; outside the home, only when it changed
  local path=$1 mode=$2 tmp
  tmp=$(mktemp)
  cat > "$tmp"
  if [ -f "$path" ] && cmp -s "$tmp" "$path"; then
    rm -f "$tmp"
    return
  fi
  mkdir -p "$(dirname "$path")"
  install -o root -g root -m "$mode" "$tmp" "$path"
  rm -f "$tmp"
  detail "wrote $path"
}

# Rootless podman enforces an app's memory, CPU and task limits only when the user manager
# has those cgroup controllers delegated, which systemd does only on a cgroup v2 host.
DELEGATE_CONF=/etc/systemd/system/user@.service.d/delegate.conf
delegate_controllers() {
  if [ ! -f "$DELEGATE_CONF" ] || ! grep -q '^Delegate=memory pids cpu' "$DELEGATE_CONF"; then
    printf '# Written by podku: rootless containers may have resource limits.\n[Service]\nDelegate=memory pids cpu cpuset io\n' \
      | write_root_file "$DELEGATE_CONF" 0644
    systemctl daemon-reload
  fi
  if [ ! -f /sys/fs/cgroup/cgroup.controllers ]; then
    detail "this host has cgroup v1 or hybrid cgroups: app resource limits are stored but not enforced (resource:report says why)"
  fi
}

# Only the quirks this host has (HOSTS.md in the project's shared notes lists them).
configure_podman() {
  local in_container=no runtime="" ulimits="" hard_nofile manager_pid
  systemd-detect-virt --container --quiet && in_container=yes
  if [ "$in_container" = yes ] || [ -d /sys/fs/cgroup/unified ] || ! command -v crun >/dev/null; then
    runtime=runc   # crun fails on hybrid cgroups and on a read-only /proc/sys
  fi
  # What the user manager really got: a container host may cap below what the unit asks.
  manager_pid=$(systemctl show "user@$DEPLOY_UID.service" -p MainPID --value)
  hard_nofile=$(awk '/^Max open files/ { print $5 }' "/proc/$manager_pid/limits")
  if [[ $hard_nofile =~ ^[0-9]+$ ]] && [ "$hard_nofile" -lt 1048576 ]; then
    ulimits="\"nofile=$hard_nofile:$hard_nofile\""
  fi
  {
    echo "# Written by podku's install.sh for this host."
    echo "[containers]"
    [ -n "$ulimits" ] && echo "default_ulimits = [$ulimits]"
    [ "$in_container" = yes ] && echo "keyring = false   # the container's seccomp filter blocks keyctl"
    echo "[engine]"
    [ -n "$runtime" ] && echo "runtime = \"$runtime\""
    echo "events_logger = \"file\"   # keep podman's own events out of the apps' logs"
  } | write_user_file "$DEPLOY_HOME/.config/containers/containers.conf" 0644
  # podman 4.3 picks vfs on first use unless told; native rootless overlay needs 5.13+.
  if kernel_at_least 5 13; then
    printf '[storage]\ndriver = "overlay"\n' | write_user_file "$DEPLOY_HOME/.config/containers/storage.conf" 0644
  fi
}

kernel_at_least() {
  local major minor
  IFS=. read -r major minor _ < <(uname -r)
  [ "$major" -gt "$1" ] || { [ "$major" -eq "$1" ] && [ "${minor%%[^0-9]*}" -ge "$2" ]; }
}

install_podku() {
  local share="$DEPLOY_HOME/.local/share/podku" stamp
  stamp=$(cd "$SOURCE_DIR" && { cat pyproject.toml install.sh
    find src units -type f -not -path '*/__pycache__/*' -print0 | sort -z | xargs -0 cat; } | sha256sum | cut -c1-16)
  PODKU_BIN="$share/venv/bin/podku"
  if [ "$(as_user cat -- "$share/installed-source" 2>/dev/null)" = "$stamp" ] && as_user test -x "$PODKU_BIN"; then
    detail "podku is up to date"
  else
    say "Installing podku for $DEPLOY_USER"
    as_user sh -c 'rm -rf -- "$1" && mkdir -p -- "$1"' replace "$share/source" 2>/dev/null \
      || die "cannot replace $share/source as $DEPLOY_USER (a directory on its way is not the user's own?)"
    (cd "$SOURCE_DIR" && tar -c --exclude=__pycache__ --exclude='*.egg-info' pyproject.toml README.md src units) \
      | as_user tar -x -C "$share/source"
    as_user test -x "$share/venv/bin/python" || as_user python3 -m venv --system-site-packages "$share/venv"
    # Dependencies come from Debian's packages (click, jinja2, pystemd, idna): no index needed.
    as_user "$share/venv/bin/pip" install --quiet --no-index --no-deps --no-build-isolation \
      --disable-pip-version-check "$share/source" >/dev/null
    echo "$stamp" | write_user_file "$share/installed-source" 0644
  fi
  install_wrapper
}

# `podku CMD` on the host, for root or the deploy user: always runs as the deploy user. For
# root it runs in a session of its own with no descriptor of root's terminal; at a terminal
# (stdin and stdout both one) it gets a new pty instead, so `podku run APP bash` works.
install_wrapper() {
  local user home bin uid
  printf -v user %q "$DEPLOY_USER"; printf -v home %q "$DEPLOY_HOME"
  printf -v bin %q "$PODKU_BIN"; printf -v uid %q "$DEPLOY_UID"
  write_root_file /usr/local/bin/podku 0755 <<WRAPPER
#!/bin/bash
# Written by podku's install.sh: every podku command runs as $user.
set -o pipefail
as_user() {  # no descriptor of root's terminal, no controlling terminal
  if [ -t 0 ]; then as_user "\$@" </dev/null
  elif [ -t 1 ]; then as_user "\$@" | cat
  elif [ -t 2 ]; then { as_user "\$@" 2>&1 >&3 3>&- | cat >&2; } 3>&1
  else setsid --wait runuser "\$@"
  fi
}
if [ "\$(id -u)" = 0 ]; then
  # A backup (or a service's dump) holds secrets, and root's \`> FILE\` made FILE at root's
  # umask: only root can narrow it. podku refuses to write to a file it cannot see private.
  case "\${1-}" in backup:export|postgres:export|redis:export)
    if [ -f /dev/stdout ]; then chmod 0600 /dev/stdout 2>/dev/null; fi;;
  esac
  cd / || exit 1
  user_cmd=(-u $user -- env -i HOME=$home USER=$user LOGNAME=$user PATH=/usr/local/bin:/usr/bin:/bin
    LANG=C.UTF-8 TERM="\${TERM:-dumb}" XDG_RUNTIME_DIR=/run/user/$uid
    DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/$uid/bus $bin "\$@")
  # At a terminal: a new pty of its own (root's is relayed, never handed over).
  [ -t 0 ] && [ -t 1 ] && exec runuser --pty "\${user_cmd[@]}"
  as_user "\${user_cmd[@]}"
  exit
elif [ "\$(id -un)" = $user ]; then
  exec $bin "\$@"
fi
echo " !     run podku as root or as $user" >&2
exit 1
WRAPPER
}

build_base_image() {
  if as_user podman image exists "$BASE_IMAGE"; then
    detail "base image $BASE_IMAGE exists"
    return
  fi
  if [ -n "$BASE_IMAGE_TAR" ]; then
    say "Importing the base image $BASE_IMAGE from $BASE_IMAGE_TAR"
    as_user podman import --quiet - "$BASE_IMAGE" < "$BASE_IMAGE_TAR" >/dev/null
  else
    say "Building the base image $BASE_IMAGE from Debian packages (about a minute)"
    as_user sh -c 'mmdebstrap --quiet --mode=unshare --variant=apt --format=tar \
        --include=python3,python3-venv,python3-pip,ca-certificates "$1" - "$2" \
      | podman import --quiet - "$3"' mmdebstrap "$BASE_SUITE" "$BASE_MIRROR" "$BASE_IMAGE" >/dev/null
  fi
}

# Caddy, run by the deploy user, binds 80 and 443 with a capability on a private copy that
# only the deploy user's group may run: no sysctl opens low ports to every local user.
install_private_caddy() {
  local group
  group=$(id -gn "$DEPLOY_USER")
  group_is_private "$group" || die "the group $group of $DEPLOY_USER has other users: give $DEPLOY_USER a group of its own"
  if cmp -s /usr/bin/caddy "$PRIVATE_CADDY" && [ "$(stat -c '%U:%G %a' "$PRIVATE_CADDY")" = "root:$group 750" ] \
      && getcap "$PRIVATE_CADDY" | grep -q cap_net_bind_service; then
    return
  fi
  install -d -o root -g root -m 0755 "${PRIVATE_CADDY%/*}"
  install -o root -g "$group" -m 0750 /usr/bin/caddy "$PRIVATE_CADDY.tmp"
  setcap cap_net_bind_service=+ep "$PRIVATE_CADDY.tmp" 2>/dev/null || {
    rm -f "$PRIVATE_CADDY.tmp"
    die "cannot give $PRIVATE_CADDY the capability to bind ports below 1024 (setcap failed): this file system or container refuses file capabilities"
  }
  mv -f "$PRIVATE_CADDY.tmp" "$PRIVATE_CADDY"
  PROXY_CHANGED=yes
  detail "installed $PRIVATE_CADDY (may bind ports below 1024, runs only for $DEPLOY_USER)"
}

group_is_private() {
  local gid members
  gid=$(getent group "$1" | cut -d: -f3)
  members=$(getent group "$1" | cut -d: -f4)
  [ -z "$members" ] || [ "$members" = "$DEPLOY_USER" ] || return 1
  [ "$(awk -F: -v gid="$gid" '$4 == gid' /etc/passwd | wc -l)" -le 1 ]
}

# Older installs opened ports 80-1023 to every local user with a sysctl, or put the
# capability on /usr/bin/caddy itself (which any local user may run): undo both.
undo_low_ports_sysctl() {
  if [ -f "$OLD_SYSCTL_FILE" ]; then
    rm -f "$OLD_SYSCTL_FILE"
    if [ "$(sysctl -n net.ipv4.ip_unprivileged_port_start 2>/dev/null)" = 80 ]; then
      sysctl -q -w net.ipv4.ip_unprivileged_port_start=1024 2>/dev/null \
        || detail "could not set net.ipv4.ip_unprivileged_port_start back to 1024: a reboot does"
    fi
    detail "removed $OLD_SYSCTL_FILE: ports below 1024 are privileged again"
  fi
  if getcap /usr/bin/caddy | grep -q cap_net_bind_service; then
    if setcap -r /usr/bin/caddy 2>/dev/null; then
      detail "removed the capability an older install gave /usr/bin/caddy"
    else
      detail "could not remove the capability on /usr/bin/caddy: run setcap -r /usr/bin/caddy"
    fi
  fi
}

setup_podku() {
  say "Configuring podku (domain $DOMAIN, HTTP port $HTTP_PORT, TLS $TLS_MODE)"
  setup_tls
  local restart=()
  [ "$PROXY_CHANGED" = no ] || restart=(--restart-proxy)
  as_user "$PODKU_BIN" setup --domain "$DOMAIN" --http-port "$HTTP_PORT" "${restart[@]}"
  if [ -n "$SSH_KEY" ]; then
    as_user "$PODKU_BIN" ssh-keys:add --if-new admin < "$SSH_KEY"
  fi
  systemctl enable --now --quiet ssh.service 2>/dev/null || systemctl enable --now --quiet sshd.service
}

deploy_example() {
  [ "$DEPLOY_EXAMPLE" = yes ] || return 0
  say "Deploying the example app"
  local work
  work=$(as_user mktemp -d)
  as_user cp -r "$SOURCE_DIR/examples/hello/." "$work/" 2>/dev/null \
    || { (cd "$SOURCE_DIR/examples/hello" && tar -c .) | as_user tar -x -C "$work"; }
  as_user git -C "$work" init --quiet --initial-branch=main
  as_user git -C "$work" -c user.name=podku -c user.email=podku@localhost add -A
  as_user git -C "$work" -c user.name=podku -c user.email=podku@localhost commit --quiet -m example
  as_user "$PODKU_BIN" apps:create hello 2>/dev/null || true
  as_user git -C "$work" push --quiet "$DEPLOY_HOME/.local/share/podku/repos/hello.git" main
  as_user rm -rf -- "$work"
}

main() {
  parse_args "$@"
  check_host
  install_packages
  stop_system_caddy
  delegate_controllers
  create_user
  configure_podman
  install_podku
  build_base_image
  undo_low_ports_sysctl
  install_private_caddy
  setup_podku
  deploy_example
  say "podku is installed. Push an app with:"
  detail "git remote add podku $DEPLOY_USER@$(hostname -f 2>/dev/null || hostname):myapp"
  detail "git push podku main"
}

main "$@"
