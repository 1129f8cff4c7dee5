"""A real container registry for a test host: Debian's docker-registry (distribution 2.8),
run on this machine inside the test host's network namespace, so the host (and rootless
podman in it) reaches it at 127.0.0.1:PORT on its own loopback. Plain HTTP: the deploy
user's registries.conf marks that address insecure (`trust`)."""

from __future__ import annotations

import shutil
import subprocess
import time

PORT = 5555  # not 5000: the apps' own port, which podman kube play publishes on the host
BINARY = "/usr/bin/docker-registry"
CONFIG = """version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
"""
REGISTRIES_CONF = """# written by the host tests (tests/host/registry.py): the test registry speaks plain HTTP
[[registry]]
location = "127.0.0.1:{port}"
insecure = true
"""


class Registry:
    def __init__(self, machine, port: int = PORT):
        if shutil.which(BINARY) is None:
            raise RuntimeError("the registry tests need Debian's docker-registry: tests/host/install-test-deps.sh")
        self.machine, self.port = machine, port
        self.address = f"127.0.0.1:{port}"
        root = machine.workdir / "registry"
        root.mkdir(exist_ok=True)
        config = machine.workdir / "registry.yml"
        config.write_text(CONFIG.format(root=root / "data", port=port))
        self.log = open(machine.workdir / "registry.log", "ab")
        self.process = subprocess.Popen(["ip", "netns", "exec", machine.netns, BINARY, "serve", str(config)],
                                        stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        self._wait_until_up()

    def _wait_until_up(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"docker-registry exited ({self.process.returncode}): see {self.log.name}")
            if self.get("/v2/")[0] == 200:
                return
            time.sleep(0.2)
        raise RuntimeError(f"docker-registry did not answer within {timeout}s")

    def get(self, path: str) -> tuple[int, str]:
        """GET http://127.0.0.1:PORT/PATH from inside the test host's namespace."""
        result = self.machine.in_netns(["curl", "-sS", "--max-time", "10", "-o", "-", "-w", "\n%{http_code}",
                                        f"http://{self.address}{path}"])
        body, _, status = result.stdout.rpartition("\n")
        return int(status or 0), body

    def trust_for(self, user: str) -> None:
        """Let rootless podman of `user` on the test host push to and pull from it over HTTP."""
        self.machine.run(["su", "-", user, "-c", "mkdir -p ~/.config/containers && cat > ~/.config/containers/"
                          "registries.conf"], input=REGISTRIES_CONF.format(port=self.port))

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()
