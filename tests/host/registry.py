"""A container registry inside a test host: Debian's docker-registry (the distribution
registry, one static-enough Go binary needing only libc) copied from this machine into the
host's root filesystem and run there on the host's loopback, over plain HTTP. The host's
podman is told, as an administrator would, that this one registry speaks no TLS."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

BINARY = Path("/usr/bin/docker-registry")  # tests/host/install-test-deps.sh installs it
ADDRESS = "127.0.0.1:5000"
UNIT = "test-registry"
CONFIG = f"""version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: /var/lib/test-registry
  delete:
    enabled: true
http:
  addr: {ADDRESS}
"""
# podman's own drop-in directory (containers-registries.conf.d(5)): added to, not replacing,
# the host's registries.conf.
INSECURE = f"""[[registry]]
location = "{ADDRESS}"
insecure = true
"""


def start(machine) -> str:
    """Run the registry in `machine` (once) and return its address, HOST:PORT."""
    if not BINARY.is_file():
        pytest.fail(f"{BINARY} is missing: run tests/host/install-test-deps.sh (it installs docker-registry)")
    target = machine.root / "usr/local/bin/docker-registry"
    if not target.exists():
        shutil.copy2(BINARY, target)
        (machine.root / "etc/test-registry.yml").write_text(CONFIG)
        conf_d = machine.root / "etc/containers/registries.conf.d"
        conf_d.mkdir(parents=True, exist_ok=True)
        (conf_d / "50-test-registry.conf").write_text(INSECURE)
    if machine.run(["systemctl", "is-active", "--quiet", UNIT], check=False).returncode != 0:
        machine.run(["systemd-run", f"--unit={UNIT}", "--property=Restart=on-failure",
                     "/usr/local/bin/docker-registry", "serve", "/etc/test-registry.yml"])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        answer = machine.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", f"http://{ADDRESS}/v2/"],
                             check=False)
        if answer.stdout.strip() == "200":
            return ADDRESS
        time.sleep(0.3)
    raise RuntimeError(f"the test registry did not answer on {ADDRESS}: "
                       + machine.run(["journalctl", "-u", UNIT, "-n", "20", "--no-pager"], check=False).stdout)


def stop(machine) -> None:
    machine.run(["systemctl", "stop", UNIT], check=False)
