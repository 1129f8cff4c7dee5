"""A disposable Debian host with real systemd: systemd-nspawn in a network namespace of its own.

Its root filesystem is a copy of the cached image (tests/host/make-images.sh), podku's source
tree is copied in without .git, and clients (git over ssh, HTTP load) run on this machine
inside the host's network namespace, so nothing touches this machine's own ports."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import load

REPO = Path(__file__).resolve().parents[2]
APPS_DIR = Path(__file__).resolve().parent / "apps"
LOAD_TOOL = REPO / "benchmarks" / "load.py"
HOSTS_DIR = Path(os.environ.get("PODKU_TEST_HOSTS", "/var/tmp/podku-test-hosts"))
SOURCE_ITEMS = ("install.sh", "pyproject.toml", "README.md", "src", "units", "examples")
IGNORED = shutil.ignore_patterns("__pycache__", "*.egg-info", ".pytest_cache")
BOOT_TIMEOUT = 90
DEPLOY_USER = "podku"


def build_images() -> tuple[Path, Path]:
    """(rootfs, base image tarball), built once and cached across runs."""
    out = subprocess.run(["bash", str(REPO / "tests/host/make-images.sh")], check=True,
                         stdout=subprocess.PIPE, text=True).stdout.split()
    return Path(out[0]), Path(out[1])


def no_traceback(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    """Whatever a command did, a user never sees a Python traceback (PODKU_DEBUG is never set
    here): every podku, git and ssh call of every host test passes through this check."""
    text = f"{result.stdout}{result.stderr}"
    assert "Traceback (most recent call last)" not in text, text[-3000:]
    return result


class HostCommands:
    """What a test does on a host, on top of its `run` (root's command inside it): the same
    for a nspawn test host and the VM of tests/vm."""

    def run(self, argv: list[str], *, check: bool = True, input: str | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess:
        raise NotImplementedError

    def sh(self, script: str, **kwargs) -> subprocess.CompletedProcess:
        return self.run(["sh", "-c", script], **kwargs)

    def podku(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """`podku ARGS` on the host, as root would type it (the wrapper runs it as podku)."""
        return no_traceback(self.run(["podku", *args], check=check))

    def as_deploy_user(self, script: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.run(["su", "-", DEPLOY_USER, "-c",
                         f"XDG_RUNTIME_DIR=/run/user/$(id -u) {script}"], check=check)

    def wait_for_user_unit(self, unit: str, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while self.as_deploy_user(f"systemctl --user is-active {unit}", check=False).stdout.strip() != "active":
            if time.monotonic() > deadline:
                raise RuntimeError(f"{unit} of {DEPLOY_USER} was not active {timeout:.0f}s after the boot")
            time.sleep(0.5)


class TestHost(HostCommands):
    __test__ = False  # a helper, not a pytest test class

    def __init__(self, name: str, rootfs: Path, base_tar: Path, memory_max: int | None = None):
        self.name = name
        # A host with this much memory (bytes): a cgroup v1 memory group on this machine
        # (nspawn's --property needs a system bus, which this machine does not have).
        self.memory_cgroup = Path(f"/sys/fs/cgroup/memory/podku-{name}") if memory_max else None
        self.memory_max = memory_max
        self.netns = f"podku-{name}"
        HOSTS_DIR.mkdir(parents=True, exist_ok=True)
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=HOSTS_DIR))
        self.root = self.workdir / "root"
        self.key = self.workdir / "id_ed25519"
        self.log = self.workdir / "console.log"
        self.nspawn: subprocess.Popen | None = None
        self._prepare(rootfs, base_tar)

    # --- lifecycle -----------------------------------------------------------------

    def _prepare(self, rootfs: Path, base_tar: Path) -> None:
        subprocess.run(["cp", "-a", "--reflink=auto", str(rootfs), str(self.root)], check=True)
        source = self.root / "opt" / "podku-src"
        source.mkdir(parents=True)
        for item in SOURCE_ITEMS:
            path = REPO / item
            if path.is_dir():
                shutil.copytree(path, source / item, ignore=IGNORED)
            elif path.exists():
                shutil.copy2(path, source / item)
        shutil.copy(base_tar, self.root / "var" / "tmp" / "podku-base.tar")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "test", "-f", str(self.key)],
                       check=True)
        shutil.copy(f"{self.key}.pub", self.root / "opt" / "test-key.pub")
        (self.root / "etc" / "hostname").write_text(self.name + "\n")
        # a namespace of the same name left by a run that was killed
        subprocess.run(["ip", "netns", "delete", self.netns], check=False, stderr=subprocess.DEVNULL)
        subprocess.run(["ip", "netns", "add", self.netns], check=True)
        self.in_netns(["ip", "link", "set", "lo", "up"], check=True)

    def _enter_memory_cgroup(self) -> None:
        if self.memory_cgroup is not None:
            (self.memory_cgroup / "cgroup.procs").write_text(str(os.getpid()))

    def boot(self) -> None:
        if self.memory_cgroup is not None:
            self.memory_cgroup.mkdir(exist_ok=True)
            (self.memory_cgroup / "memory.limit_in_bytes").write_text(str(self.memory_max))
        with open(self.log, "ab") as log:
            self.nspawn = subprocess.Popen(
                ["systemd-nspawn", "--quiet", "-D", str(self.root), "-b", "--register=no",
                 "--keep-unit", "--console=passive", "-M", self.name,
                 f"--network-namespace-path=/run/netns/{self.netns}"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=self._enter_memory_cgroup if self.memory_cgroup is not None else None)
        deadline = time.monotonic() + BOOT_TIMEOUT
        while time.monotonic() < deadline:
            if self.nspawn.poll() is not None:
                raise RuntimeError(f"test host {self.name} exited while booting: {self.console_tail()}")
            if self._leader() and self.sh("systemctl is-system-running 2>/dev/null | grep -qE 'running|degraded'",
                                          check=False).returncode == 0:
                # nspawn makes /dev/net/tun root-only; on a VPS udev makes it 0666, which
                # rootless slirp4netns (the builds' network) needs
                self.run(["chmod", "0666", "/dev/net/tun"])
                return
            time.sleep(0.3)
        raise RuntimeError(f"test host {self.name} did not boot in {BOOT_TIMEOUT}s: {self.console_tail()}")

    def shutdown(self, grace: float = 20.0) -> None:
        """Halt the host: SIGTERM asks it to power off, a second one ends it at once."""
        if self.nspawn is None or self.nspawn.poll() is not None:
            self.nspawn = None
            return
        for _ in range(2):
            os.kill(self.nspawn.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.nspawn.wait(timeout=grace)
                break
        if self.nspawn.poll() is None:
            os.kill(self.nspawn.pid, signal.SIGKILL)
            self.nspawn.wait(timeout=30)
        self.nspawn = None

    def reboot(self) -> None:
        """Power off, boot again, and wait for the deploy user's Caddy: the system counts as
        up once user@.service has started, while the user's own units may still be starting."""
        self.shutdown(grace=60.0)
        self.boot()
        if self.run(["id", DEPLOY_USER], check=False).returncode == 0:
            self.wait_for_user_unit("podku-caddy.service")

    def destroy(self) -> None:
        try:
            self.shutdown()
        finally:
            subprocess.run(["ip", "netns", "delete", self.netns], check=False,
                           stderr=subprocess.DEVNULL)
            shutil.rmtree(self.workdir, ignore_errors=True)
            if self.memory_cgroup is not None:
                with contextlib.suppress(OSError):
                    self.memory_cgroup.rmdir()

    def console_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(FileNotFoundError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def _leader(self) -> int | None:
        """PID of the host's init (systemd), the nspawn process's child."""
        if self.nspawn is None:
            return None
        children = Path(f"/proc/{self.nspawn.pid}/task/{self.nspawn.pid}/children")
        with contextlib.suppress(FileNotFoundError):
            pids = children.read_text().split()
            return int(pids[0]) if pids else None
        return None

    # --- running things ----------------------------------------------------------------

    def run(self, argv: list[str], *, check: bool = True, input: str | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess:
        """A command inside the host, as root."""
        leader = self._leader()
        if leader is None:
            raise RuntimeError(f"test host {self.name} is not running")
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
               "HOME": "/root"}
        result = subprocess.run(["nsenter", "-t", str(leader), "-a", "--", *argv], input=input, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"{argv} failed ({result.returncode}) in {self.name}:\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result

    def in_netns(self, argv: list[str], **kwargs) -> subprocess.CompletedProcess:
        """A command on this machine, inside the host's network namespace (a client)."""
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
        kwargs.setdefault("text", True)
        return subprocess.run(["ip", "netns", "exec", self.netns, *argv], **kwargs)

    def install(self, *extra: str, check: bool = True) -> subprocess.CompletedProcess:
        # Test hosts never reach for a public ACME CA: Caddy's internal CA unless a test
        # passes its own --tls (the ACME test points --acme-ca at a local pebble).
        tls = [] if "--tls" in extra else ["--tls", "internal"]
        return self.run(["/opt/podku-src/install.sh", "--base-image-tar", "/var/tmp/podku-base.tar",
                         "--ssh-key", "/opt/test-key.pub", *tls, *extra], timeout=900, check=check)

    # --- clients -----------------------------------------------------------------------

    def git_env(self) -> dict[str, str]:
        ssh = (f"ssh -i {self.key} -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=no "
               f"-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR")
        return {**os.environ, "GIT_SSH_COMMAND": ssh}

    def remote(self, app: str) -> str:
        return f"{DEPLOY_USER}@127.0.0.1:{app}"

    def git(self, repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = no_traceback(self.in_netns(["git", "-C", str(repo), *args], env=self.git_env(), timeout=600))
        if check and result.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} failed ({result.returncode}):\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result

    def ssh(self, *words: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
        """`ssh podku@HOST WORDS`: a command through the forced-command entry (stdin: `input`)."""
        argv = ["ssh", "-i", str(self.key), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                f"{DEPLOY_USER}@127.0.0.1", *words]
        result = no_traceback(self.in_netns(argv, timeout=600, input=input))
        if check and result.returncode != 0:
            raise AssertionError(f"ssh {' '.join(words)} failed ({result.returncode}):\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result

    def http_get(self, host: str, path: str = "/", port: int = 80) -> tuple[int, str]:
        """GET through Caddy on the host's loopback, with the given Host header."""
        result = self.in_netns(["curl", "-sS", "--max-time", "30", "-o", "-", "-w", "\n%{http_code}",
                                "-H", f"Host: {host}", f"http://127.0.0.1:{port}{path}"])
        body, _, status = result.stdout.rpartition("\n")
        return int(status or 0), body


class AppRepo:
    """A local git repository of the test app, changed and committed by tests."""

    def __init__(self, path: Path, machine: TestHost, app: str):
        self.path, self.host, self.app = path, machine, app
        path.mkdir(parents=True, exist_ok=True)
        shutil.copy(APPS_DIR / "testapp.py", path / "testapp.py")
        self._git("init", "-q", "-b", "main")

    def write(self, env: dict[str, str] | None = None, expose: int | None = None,
              extra: str = "", message: str = "") -> None:
        lines = ["FROM localhost/podku/python:3.11", "COPY testapp.py /app/testapp.py"]
        lines += [f"ENV {key}={value}" for key, value in (env or {}).items()]
        lines += [f"EXPOSE {expose}"] if expose else []
        lines += [extra] if extra else []
        lines += ['CMD ["python3", "/app/testapp.py"]']
        (self.path / "Containerfile").write_text("\n".join(lines) + "\n")
        self._git("add", "-A")
        self._git("commit", "-q", "--allow-empty", "-m", message or f"deploy {env}")

    def push(self, check: bool = True, branch: str = "main") -> subprocess.CompletedProcess:
        return self.host.git(self.path, "push", self.host.remote(self.app), f"HEAD:{branch}", check=check)

    def deploy(self, message: str, **kwargs) -> subprocess.CompletedProcess:
        self.write(env={"MESSAGE": message, **kwargs.pop("env", {})}, **kwargs)
        return self.push()

    def _git(self, *args: str) -> None:
        subprocess.run(["git", "-C", str(self.path), "-c", "user.name=test", "-c", "user.email=test@podku.invalid",
                        *args], check=True, stdout=subprocess.DEVNULL)


class LoadRun:
    """Constant concurrent load through Caddy (benchmarks/load.py, in the host's network
    namespace) while a test changes the app; the records come back when it ends. Every 4th
    request of a client is a POST with a body, unless `post_every` says otherwise; a POST
    answered with a status in `post_answers` (a static site's 405) counts as served."""

    def __init__(self, machine: TestHost, app: str, workdir: Path, clients: int = 8,
                 keepalive: str = "mix", path: str = "/", post_every: int = 4, host_header: str | None = None,
                 cacert: Path | None = None, post_answers: tuple[int, ...] = ()):
        self.load = load
        self.out, self.stop, self.ready = workdir / "load.json", workdir / "load.stop", workdir / "load.ready"
        for leftover in (self.out, self.stop, self.ready):  # from an earlier run in workdir
            leftover.unlink(missing_ok=True)
        url = "https://127.0.0.1:443/" if cacert else "http://127.0.0.1:80/"  # https: verified by cacert
        argv = [sys.executable, str(LOAD_TOOL), "--url", url, *(["--cacert", str(cacert)] if cacert else []),
                "--host-header", host_header or f"{app}.podku.localhost",
                "--clients", str(clients), "--keepalive", keepalive,
                "--duration", "900", "--out", str(self.out), "--stop-file", str(self.stop),
                "--ready-file", str(self.ready), "--path", path, "--post-every", str(post_every),
                *[word for status in post_answers for word in ("--post-answer", str(status))]]
        self.process = subprocess.Popen(["ip", "netns", "exec", machine.netns, *argv],
                                        stdout=subprocess.PIPE, text=True)
        self.records: list[dict] = []

    def __enter__(self) -> LoadRun:
        deadline = time.monotonic() + 60
        while not self.ready.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the load tool did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.stop.touch()
        try:
            self.summary_line = self.process.communicate(timeout=120)[0].strip()
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
        self.records = self.load.load_results(self.out)["records"]
        print(f"load: {self.summary_line}")

    @property
    def summary(self) -> dict:
        return self.load.summarize(self.records)

    def failures(self) -> list[dict]:
        return self.load.failures(self.records)

    def body_sequences(self) -> dict[int, list[str]]:
        return self.load.body_switches(self.records)

    def assert_no_failures(self) -> None:
        summary = self.summary
        assert summary["requests"] > 0
        assert self.failures() == [], f"{len(self.failures())} failed: {self.failures()[:5]}"
        assert summary["retried"] == 0, summary


# --- backups ------------------------------------------------------------------------------

def only_app(archive: bytes, app: str, storage_dir: str, services: tuple[str, ...] = ()) -> bytes:
    """The backup with only `app`, its storage directory and the `services` ("KIND/NAME") in
    it: the shared host holds other tests' apps, some of them hostile on purpose (a
    repository git's fsck refuses)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(archive)) as source, \
            tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as target:
        for member in source.getmembers():
            parts = member.name.split("/")
            if parts[0] in ("state", "repos") and len(parts) > 1 and parts[1] not in (app, f"{app}.git"):
                continue
            if parts[0] == "services" and len(parts) > 2 and f"{parts[1]}/{parts[2].split('.')[0]}" not in services:
                continue
            handle = source.extractfile(member)
            data = handle.read() if handle else None
            if member.name == "MANIFEST":
                magic, _, manifest = data.decode().partition("\n")
                data = f"{magic}\n{json.dumps({**json.loads(manifest), 'apps': [app]})}\n".encode()
            elif member.name == "storage.tar":
                data = only_storage(data, storage_dir)
            if data is not None:
                member.size = len(data)
            target.addfile(member, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def only_storage(nested: bytes, storage_dir: str) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(nested)) as source, \
            tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as target:
        for member in source.getmembers():
            name = member.name.removeprefix("./")
            if member.name in (".", "./") or name == storage_dir or name.startswith(storage_dir + "/"):
                target.addfile(member, source.extractfile(member) if member.isreg() else None)
    return out.getvalue()
