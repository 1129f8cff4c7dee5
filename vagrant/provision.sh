#!/usr/bin/env bash
# The one provisioning of a podku VM, as root inside it: the Vagrantfile runs it on a fresh
# debian/bookworm64 box, and the VM test tier (tests/vm) runs it on its own Debian 12 image.
# The source tree is a plain copy at $PODKU_SRC (default /opt/podku-src); the arguments go
# to install.sh (--example, or the tests' --base-image-tar/--ssh-key/--tls internal).
set -euo pipefail
src=${PODKU_SRC:-/opt/podku-src}
[ -x "$src/install.sh" ] || { echo "provision.sh: no podku source tree at $src" >&2; exit 1; }
"$src/install.sh" "$@"
echo "podku: $(free -m | awk '/^Mem:/ {print $3 " MiB used of " $2}') after provisioning"
