"""What the builder tests and benchmarks/deploy_time.py share: a test host made ready for
builds without a Containerfile (the node base imported, package indexes served next to it)
and the sample apps, written and pushed as plain git repositories."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import pkgserver  # noqa: E402

PKG_PORT = 3141
# The package server's own network namespace, linked to the test host's by a veth pair: the
# host reaches it as a mirror on its network (builds through slirp4netns), not on loopback,
# over HTTPS with a test CA the host trusts (pip takes plain HTTP from loopback only).
HOST_SIDE, SERVER_SIDE = "10.199.0.1/30", "10.199.0.2/30"
PKG_ADDRESS = SERVER_SIDE.split("/")[0]
NODE_BASE = "localhost/podku/node:18"
NPM_TARBALL = "https://registry.npmjs.org/is-number/-/is-number-7.0.0.tgz"


def node_base_tar() -> Path:
    out = subprocess.run(["bash", str(HERE / "make-images.sh")], check=True, stdout=subprocess.PIPE,
                         text=True).stdout.split()
    return Path(out[2])


class PackageServer:
    """pkgserver.py serving the cached packages at PKG_ADDRESS, in a namespace of its own."""

    def __init__(self, machine, port: int = PKG_PORT):
        self.root = pkgserver.fetch()
        self.netns = f"{machine.netns}-pkg"
        link_namespace(machine.netns, self.netns)
        cert, key = trusted_certificate(machine)
        self.process = subprocess.Popen(["ip", "netns", "exec", self.netns, sys.executable,
                                         str(HERE / "pkgserver.py"), "serve", str(self.root), PKG_ADDRESS,
                                         str(port), str(cert), str(key)],
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        if self.process.stdout.readline().strip() != "ready":
            raise RuntimeError("the package server did not start")

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        subprocess.run(["ip", "netns", "delete", self.netns], check=False, stderr=subprocess.DEVNULL)


def link_namespace(host_netns: str, server_netns: str) -> None:
    """A fresh `server_netns` joined to the test host's namespace by a veth pair."""
    subprocess.run(["ip", "netns", "delete", server_netns], check=False, stderr=subprocess.DEVNULL)
    subprocess.run(["ip", "-n", host_netns, "link", "delete", "pkg0"], check=False, stderr=subprocess.DEVNULL)
    for argv in (["ip", "netns", "add", server_netns],
                 ["ip", "-n", server_netns, "link", "set", "lo", "up"],
                 ["ip", "-n", host_netns, "link", "add", "pkg0", "type", "veth", "peer", "name", "pkg1",
                  "netns", server_netns],
                 ["ip", "-n", host_netns, "addr", "add", HOST_SIDE, "dev", "pkg0"],
                 ["ip", "-n", host_netns, "link", "set", "pkg0", "up"],
                 ["ip", "-n", server_netns, "addr", "add", SERVER_SIDE, "dev", "pkg1"],
                 ["ip", "-n", server_netns, "link", "set", "pkg1", "up"]):
        subprocess.run(argv, check=True)


def trusted_certificate(machine) -> tuple[Path, Path]:
    """(certificate, key) for PKG_ADDRESS, from a test CA the test host now trusts."""
    directory = machine.workdir / "pkg-tls"
    directory.mkdir(exist_ok=True)
    cert, key, ca, ca_key = (directory / name for name in ("server.crt", "server.key", "ca.crt", "ca.key"))
    (directory / "server.ext").write_text(f"subjectAltName=IP:{PKG_ADDRESS}\nbasicConstraints=CA:FALSE\n"
                                          "extendedKeyUsage=serverAuth\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for argv in (["openssl", "req", "-x509", *ec, "-keyout", ca_key, "-out", ca, "-days", "7",
                  "-subj", "/CN=podku test package mirror CA"],
                 ["openssl", "req", *ec, "-keyout", key, "-out", directory / "server.csr",
                  "-subj", f"/CN={PKG_ADDRESS}"],
                 ["openssl", "x509", "-req", "-in", directory / "server.csr", "-CA", ca, "-CAkey", ca_key,
                  "-CAcreateserial", "-out", cert, "-days", "7", "-extfile", directory / "server.ext"]):
        subprocess.run([str(word) for word in argv], check=True, capture_output=True)
    shutil.copy(ca, machine.root / "usr/local/share/ca-certificates/podku-test-packages.crt")
    machine.run(["update-ca-certificates"])
    return cert, key


def prepare_host(machine) -> PackageServer:
    """Import the node base as the deploy user and point podku's builds at the local indexes."""
    if machine.as_deploy_user(f"podman image exists {NODE_BASE}", check=False).returncode != 0:
        target = machine.root / "var" / "tmp" / "podku-node-base.tar"
        shutil.copy(node_base_tar(), target)
        target.chmod(0o644)
        machine.as_deploy_user(f"podman import --quiet - {NODE_BASE} < /var/tmp/podku-node-base.tar")
        target.unlink()
    server = PackageServer(machine)
    machine.podku("builder:set-global", "pip-index-url", f"https://{PKG_ADDRESS}:{PKG_PORT}/simple/")
    machine.podku("builder:set-global", "npm-registry", f"https://{PKG_ADDRESS}:{PKG_PORT}/npm/")
    return server


class SourceRepo:
    """A user's app repository: files written, committed and pushed over ssh."""

    def __init__(self, path: Path, machine, app: str):
        self.path, self.host, self.app = path, machine, app
        path.mkdir(parents=True, exist_ok=True)
        self._git("init", "-q", "-b", "main")

    def write(self, files: dict[str, str], message: str = "change") -> None:
        for name, text in files.items():
            (self.path / name).parent.mkdir(parents=True, exist_ok=True)
            (self.path / name).write_text(text)
        self._git("add", "-A")
        self._git("commit", "-q", "--allow-empty", "-m", message)

    def push(self, check: bool = True) -> subprocess.CompletedProcess:
        return self.host.git(self.path, "push", self.host.remote(self.app), "HEAD:main", check=check)

    def _git(self, *args: str) -> None:
        subprocess.run(["git", "-C", str(self.path), "-c", "user.name=test", "-c", "user.email=test@podku.invalid",
                        *args], check=True, stdout=subprocess.DEVNULL)


# --- the sample apps ---------------------------------------------------------------------------

def flask_app(message: str, extra_requirements: str = "") -> dict[str, str]:
    return {
        "requirements.txt": f"flask==3.0.3\ngunicorn==23.0.0\n{extra_requirements}",
        "Procfile": "web: gunicorn app:app\n",
        "app.py": ("from flask import Flask\n\napp = Flask(__name__)\n\n\n@app.route('/')\n"
                   f"def index():\n    return {('flask ' + message)!r}\n"),
    }


def uvicorn_app(message: str) -> dict[str, str]:
    return {
        "requirements.txt": "uvicorn==0.30.6\n",
        "Procfile": "web: uvicorn main:app\n",
        "main.py": ("async def app(scope, receive, send):\n"
                    "    if scope['type'] != 'http':\n        return\n"
                    "    await send({'type': 'http.response.start', 'status': 200,\n"
                    "                'headers': [(b'content-type', b'text/plain')]})\n"
                    f"    await send({{'type': 'http.response.body', 'body': {('uvicorn ' + message).encode()!r}}})\n"),
    }


def node_app(message: str, description: str = "test") -> dict[str, str]:
    integrity = pkgserver.npm_integrity(pkgserver.fetch(), "is-number@7.0.0")
    package = {"name": "nodeapp", "version": "1.0.0", "description": description, "main": "server.js",
               "dependencies": {"is-number": "7.0.0"}}
    lock = {"name": "nodeapp", "version": "1.0.0", "lockfileVersion": 3, "requires": True, "packages": {
        "": {"name": "nodeapp", "version": "1.0.0", "dependencies": {"is-number": "7.0.0"}},
        "node_modules/is-number": {"version": "7.0.0", "resolved": NPM_TARBALL, "integrity": integrity,
                                   "engines": {"node": ">=0.12.0"}}}}
    server = ("const http = require('http');\nconst isNumber = require('is-number');\n"
              "http.createServer((req, res) => { res.end(`node ${isNumber(process.env.PORT)} "
              + message + "`); })\n  .listen(process.env.PORT);\n"
              "process.on('SIGTERM', () => process.exit(0));\n")
    return {"package.json": json.dumps(package, indent=2) + "\n",
            "package-lock.json": json.dumps(lock, indent=2) + "\n", "server.js": server}


def static_site(message: str) -> dict[str, str]:
    return {"public/index.html": f"static {message}", "README.md": "a static site\n"}


def step_output(build_output: str, needle: str) -> str:
    """The lines podman printed for the build step whose instruction contains `needle`."""
    lines = build_output.splitlines()
    start = next(i for i, line in enumerate(lines) if "STEP " in line and needle in line)
    end = next((i for i in range(start + 1, len(lines)) if "STEP " in lines[i]), len(lines))
    return "\n".join(lines[start:end])


def wait_for_answer(machine, host: str, expected: str, timeout: float = 60) -> float:
    """Poll through Caddy until `expected` is served; the time it was first seen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body = machine.http_get(host)
        if status == 200 and body == expected:
            return time.monotonic()
        time.sleep(0.05)
    raise AssertionError(f"{host} did not answer {expected!r} within {timeout}s")
