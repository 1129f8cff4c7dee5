"""What the builder tests and benchmarks/deploy_time.py share: a test host made ready for
builds without a Containerfile (the node base imported, package indexes served in its
network namespace) and the sample apps, written and pushed as plain git repositories."""

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
NODE_BASE = "localhost/podku/node:18"
NPM_TARBALL = "https://registry.npmjs.org/is-number/-/is-number-7.0.0.tgz"


def node_base_tar() -> Path:
    out = subprocess.run(["bash", str(HERE / "make-images.sh")], check=True, stdout=subprocess.PIPE,
                         text=True).stdout.split()
    return Path(out[2])


class PackageServer:
    """pkgserver.py serving the cached packages on the test host's loopback."""

    def __init__(self, machine, port: int = PKG_PORT):
        self.root = pkgserver.fetch()
        self.process = subprocess.Popen(["ip", "netns", "exec", machine.netns, sys.executable,
                                         str(HERE / "pkgserver.py"), "serve", str(self.root), str(port)],
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        if self.process.stdout.readline().strip() != "ready":
            raise RuntimeError("the package server did not start")

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def prepare_host(machine) -> PackageServer:
    """Import the node base as the deploy user and point podku's builds at the local indexes."""
    if machine.as_deploy_user(f"podman image exists {NODE_BASE}", check=False).returncode != 0:
        target = machine.root / "var" / "tmp" / "podku-node-base.tar"
        shutil.copy(node_base_tar(), target)
        target.chmod(0o644)
        machine.as_deploy_user(f"podman import --quiet - {NODE_BASE} < /var/tmp/podku-node-base.tar")
        target.unlink()
    server = PackageServer(machine)
    machine.podku("builder:set-global", "pip-index-url", f"http://127.0.0.1:{PKG_PORT}/simple/")
    machine.podku("builder:set-global", "npm-registry", f"http://127.0.0.1:{PKG_PORT}/npm/")
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
