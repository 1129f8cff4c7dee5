"""The package indexes the builder tests need, for test hosts that have no route out.

    pkgserver.py fetch                    download once (cached by versions), print the directory
    pkgserver.py serve DIR ADDRESS PORT CERT KEY
                                          a PEP 503 index at /simple/ and an npm registry at
                                          /npm/, over HTTPS (pip trusts plain HTTP on loopback only)

`fetch` runs on this machine (it reaches PyPI and the npm registry); `serve` runs in a
network namespace of its own next to a test host's (builderapps.PackageServer), reached
over a veth link like a mirror on the host's network: never on the host's loopback, which
builds cannot reach. Wheels are for the base image's CPython 3.11 on linux x86_64."""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import os
import re
import ssl
import subprocess
import sys
import tarfile
import urllib.parse
from pathlib import Path

CACHE = Path(os.environ.get("PODKU_TEST_CACHE", "/var/cache/podku-test"))
PYTHON_PACKAGES = ("flask==3.0.3", "werkzeug==3.0.3", "jinja2==3.1.4", "markupsafe==2.1.5",
                   "itsdangerous==2.2.0", "click==8.1.7", "blinker==1.8.2", "gunicorn==23.0.0",
                   "packaging==24.1", "uvicorn==0.30.6", "h11==0.14.0", "six==1.16.0",
                   # the postgres service tests' app: psycopg 3 with its bundled libpq
                   "psycopg==3.2.3", "psycopg-binary==3.2.3", "typing-extensions==4.12.2",
                   # and redis-py (async-timeout: Debian 12's Python is 3.11.2)
                   "redis==5.0.8", "async-timeout==4.0.3")
NPM_PACKAGES = ("is-number@7.0.0",
                # the services tests' Node app: ioredis, node-redis and node-postgres, with every
                # package they depend on (the server resolves nothing from outside)
                "ioredis@6.0.0", "@ioredis/commands@2.0.0", "cluster-key-slot@1.1.1", "debug@4.4.3", "ms@2.1.3",
                "denque@2.1.0", "redis-errors@1.2.0", "standard-as-callback@2.1.0", "@redis/client@6.3.1",
                "pg@8.23.1", "pg-cloudflare@1.4.1", "pg-connection-string@2.14.1", "pg-int8@1.0.1",
                "pg-pool@3.14.0", "pg-protocol@1.16.1", "pg-types@2.2.0", "pgpass@1.0.5", "split2@4.2.0",
                "postgres-array@2.0.0", "postgres-bytea@1.0.1", "postgres-date@1.0.7", "postgres-interval@1.2.0",
                "xtend@4.0.2")
# What npm reads from a packument's version to resolve a tree (the rest is in the tarball).
MANIFEST_FIELDS = ("dependencies", "optionalDependencies", "peerDependencies", "peerDependenciesMeta",
                   "engines", "bin", "os", "cpu")
PIP_TARGET = ("--only-binary=:all:", "--platform", "manylinux2014_x86_64", "--python-version", "3.11",
              "--implementation", "cp", "--abi", "cp311")


def cache_dir() -> Path:
    key = hashlib.sha256("\n".join(PYTHON_PACKAGES + NPM_PACKAGES + ("v1",)).encode()).hexdigest()[:16]
    return CACHE / f"packages-{key}"


def fetch() -> Path:
    out = cache_dir()
    if out.is_dir():
        return out
    tmp = out.with_suffix(".tmp")
    subprocess.run(["rm", "-rf", str(tmp)], check=True)
    (tmp / "npm").mkdir(parents=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                    *PIP_TARGET, "-d", str(tmp / "pypi"), *PYTHON_PACKAGES], check=True, stdout=sys.stderr)
    for spec in NPM_PACKAGES:
        subprocess.run(["npm", "pack", "--silent", spec, "--pack-destination", str(tmp / "npm")],
                       check=True, stdout=sys.stderr, cwd=tmp)
    os.rename(tmp, out)
    return out


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def wheel_project(filename: str) -> str:
    return normalize(filename.split("-")[0])


def npm_name_version(filename: str) -> tuple[str, str]:
    name, _, version = filename.removesuffix(".tgz").rpartition("-")
    return name, version


def packed_name(name: str) -> str:
    """The name `npm pack` gives a package's tarball: @scope/name packs as scope-name-VERSION.tgz."""
    return name.removeprefix("@").replace("/", "-")


def manifest(tarball: Path) -> dict:
    """The fields of the tarball's package.json that npm resolves dependencies from."""
    with tarfile.open(tarball) as archive:
        member = archive.extractfile("package/package.json")
        data = json.load(member) if member else {}
    return {key: data[key] for key in MANIFEST_FIELDS if key in data}


class Handler(http.server.BaseHTTPRequestHandler):
    root: Path

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if path.startswith("/simple/"):
            self.simple(path.removeprefix("/simple/").strip("/"))
        elif path.startswith("/files/"):
            self.file(self.root / "pypi" / Path(path).name, "application/octet-stream")
        elif "/-/" in path and path.startswith("/npm/"):
            self.file(self.root / "npm" / Path(path).name, "application/octet-stream")
        elif path.startswith("/npm/"):
            self.packument(path.removeprefix("/npm/").strip("/"))
        else:
            self.send_error(404)

    def simple(self, project: str) -> None:
        wheels = sorted(p.name for p in (self.root / "pypi").iterdir())
        if not project:
            links = sorted({wheel_project(name) for name in wheels})
            return self.html("".join(f'<a href="/simple/{p}/">{p}</a>\n' for p in links))
        files = [name for name in wheels if wheel_project(name) == normalize(project)]
        if not files:
            return self.send_error(404)
        self.html("".join(f'<a href="/files/{name}#sha256={sha256(self.root / "pypi" / name)}">{name}</a>\n'
                          for name in files))

    def packument(self, name: str) -> None:
        name = urllib.parse.unquote(name)  # a scoped name comes as @scope%2fname
        base = f"https://{self.headers.get('Host', '127.0.0.1')}/npm/{name}/-/"
        versions = {}
        for tarball in sorted((self.root / "npm").glob("*.tgz")):
            package, version = npm_name_version(tarball.name)
            if package == packed_name(name):
                data = tarball.read_bytes()
                integrity = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
                versions[version] = {**manifest(tarball), "name": name, "version": version, "dist": {
                    "tarball": base + tarball.name, "integrity": integrity,
                    "shasum": hashlib.sha1(data).hexdigest()}}
        if not versions:
            return self.send_error(404)
        latest = sorted(versions)[-1]
        self.send_bytes(json.dumps({"name": name, "dist-tags": {"latest": latest}, "versions": versions}).encode(),
                        "application/json")

    def html(self, body: str) -> None:
        self.send_bytes(f"<!DOCTYPE html><html><body>\n{body}</body></html>\n".encode(), "text/html")

    def file(self, path: Path, content_type: str) -> None:
        if not path.is_file():
            return self.send_error(404)
        self.send_bytes(path.read_bytes(), content_type)

    def send_bytes(self, body: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args) -> None:
        sys.stderr.write("pkgserver: " + (format % args) + "\n")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def npm_integrity(root: Path, spec: str) -> str:
    name, _, version = spec.rpartition("@")
    data = (root / "npm" / f"{name}-{version}.tgz").read_bytes()
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def serve(root: Path, address: str, port: int, cert: Path, key: Path) -> None:
    Handler.root = root
    server = http.server.ThreadingHTTPServer((address, port), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    if sys.argv[1:2] == ["fetch"]:
        print(fetch())
    elif sys.argv[1:2] == ["serve"] and len(sys.argv) == 7:
        serve(Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]), Path(sys.argv[5]), Path(sys.argv[6]))
    else:
        sys.exit(__doc__)
