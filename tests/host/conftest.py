"""Host tests: a booted Debian host with real systemd, podman and Caddy, podku installed by
install.sh, apps pushed with real git over real ssh. One shared host per run; tests that
need a pristine host get their own."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import testhost  # noqa: E402

APPS_DIR = Path(__file__).resolve().parent / "apps"
_names = itertools.count(1)


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/host/" in str(item.fspath):
            item.add_marker(pytest.mark.host)


@pytest.fixture(scope="session")
def images():
    if os.geteuid() != 0:
        pytest.fail("host tests need root (they boot systemd-nspawn test hosts)")
    for tool in ("systemd-nspawn", "mmdebstrap", "ip", "nsenter"):
        if shutil.which(tool) is None:
            pytest.fail(f"host tests need {tool}: run .ci/run or install what it installs")
    return testhost.build_images()


@pytest.fixture(scope="session")
def host(images):
    """The shared test host, podku installed, shared by tests that each use their own apps."""
    machine = testhost.TestHost("podku-shared", *images)
    try:
        machine.boot()
        machine.install()
        yield machine
    finally:
        machine.destroy()


@pytest.fixture
def fresh_host(images):
    """A booted host of its own, podku not installed yet."""
    machine = testhost.TestHost(f"podku-fresh{next(_names)}", *images)
    try:
        machine.boot()
        yield machine
    finally:
        machine.destroy()


@pytest.fixture
def app_name(request):
    """A name no other test uses on the shared host."""
    base = "".join(ch for ch in request.node.name.lower() if ch.isalnum())[:40]
    return f"{base}{next(_names)}"


class AppRepo:
    """A local git repository of the test app, changed and committed by tests."""

    def __init__(self, path: Path, machine: testhost.TestHost, app: str):
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


@pytest.fixture
def app_repo(tmp_path, host, app_name):
    return AppRepo(tmp_path / app_name, host, app_name)


LOAD_TOOL = Path(__file__).resolve().parents[2] / "benchmarks" / "load.py"


class LoadRun:
    """Constant concurrent load through Caddy (benchmarks/load.py, in the host's network
    namespace) while a test changes the app; the records come back when it ends."""

    def __init__(self, machine: testhost.TestHost, app: str, workdir: Path, clients: int = 8,
                 keepalive: str = "mix", path: str = "/"):
        import load
        self.load = load
        self.out, self.stop, self.ready = workdir / "load.json", workdir / "load.stop", workdir / "load.ready"
        argv = [sys.executable, str(LOAD_TOOL), "--url", "http://127.0.0.1:80/", "--host-header",
                f"{app}.podku.localhost", "--clients", str(clients), "--keepalive", keepalive,
                "--duration", "900", "--out", str(self.out), "--stop-file", str(self.stop),
                "--ready-file", str(self.ready), "--path", path]
        self.process = subprocess.Popen(["ip", "netns", "exec", machine.netns, *argv],
                                        stdout=subprocess.PIPE, text=True)
        self.records: list[dict] = []

    def __enter__(self) -> "LoadRun":
        import time
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


@pytest.fixture
def load_run(host, tmp_path):
    def start(app: str, **kwargs) -> LoadRun:
        return LoadRun(host, app, tmp_path, **kwargs)
    return start
