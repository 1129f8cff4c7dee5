"""A disposable 1 GiB Debian 12 virtual machine with a real kernel: qemu, cgroup v2, no swap.

Its disk is the cached image of tests/vm/make-image.sh, opened with snapshot=on (writes go to a
temporary file qemu drops at exit). Its only network is qemu's user network with restrict=on:
nothing inside reaches out, and this machine reaches the VM's ssh and HTTP ports through
forwards to 127.0.0.1 ports. The same client methods as tests/host/testhost.TestHost (run, sh,
podku, ssh, git, http_get, as_deploy_user), so host tests' helpers work on either."""

from __future__ import annotations

import contextlib
import ctypes
import io
import json
import os
import shlex
import signal
import socket
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

import testhost
from testhost import DEPLOY_USER, IGNORED, REPO, SOURCE_ITEMS, no_traceback

VM_DIR = Path(__file__).resolve().parent
MEMORY_MIB = 1024
CPUS = 2
BOOT_TIMEOUT = 300  # TCG emulation under a loaded 2-core machine: ~30 s idle, much more when busy
KVM_PROBE_SECONDS = 20
SSH_OPTIONS = ["-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
               "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=20",
               "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=8"]
PR_SET_PDEATHSIG = 1


class VmImage:
    """The cached disk image, its kernel and initrd, root's key (tests/vm/make-image.sh)."""

    def __init__(self) -> None:
        out = subprocess.run(["bash", str(VM_DIR / "make-image.sh")], check=True,
                             stdout=subprocess.PIPE, text=True).stdout.split()
        self.disk, self.kernel, self.initrd, self.root_key = (Path(path) for path in out)
        self.base_tar = testhost.build_images()[1]


def _die_with_parent() -> None:
    """qemu goes when the test process goes, even if it is killed before its teardown."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    os.setsid()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def accelerator(image: VmImage) -> str:
    """"kvm:CPU" if a Linux kernel boots under KVM here with that CPU model (on some machines it
    aborts or hangs), else "tcg". PODKU_VM_ACCEL=tcg or kvm:CPU decides without the probe; the
    probe's answer is cached beside the image, per kernel of this machine."""
    chosen = os.environ.get("PODKU_VM_ACCEL")
    if chosen:
        return chosen
    cached = image.disk.parent / f"accel-{os.uname().release}"
    if cached.exists():
        return cached.read_text().strip()
    answer = "tcg"
    if os.access("/dev/kvm", os.R_OK | os.W_OK):
        answer = next((f"kvm:{cpu}" for cpu in ("host", "qemu64") if _kvm_boots(image, cpu)), "tcg")
    cached.write_text(answer + "\n")
    return answer


def _kvm_boots(image: VmImage, cpu: str) -> bool:
    """Whether the kernel reaches its init (the initrd's) under KVM within the probe's time."""
    with tempfile.NamedTemporaryFile(prefix="podku-kvm-probe-", suffix=".log") as log:
        qemu = subprocess.Popen(
            ["qemu-system-x86_64", "-accel", "kvm", "-cpu", cpu, "-m", "256", "-nodefaults",
             "-display", "none", "-no-reboot", "-kernel", str(image.kernel), "-initrd", str(image.initrd),
             "-append", "console=ttyS0 panic=-1", "-serial", f"file:{log.name}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent)
        try:
            deadline = time.monotonic() + KVM_PROBE_SECONDS
            while time.monotonic() < deadline and qemu.poll() is None:
                if b"Run /init as init process" in Path(log.name).read_bytes():
                    return True
                time.sleep(0.5)
            return False
        finally:
            qemu.kill()
            qemu.wait()


class VmHost(testhost.HostCommands):
    __test__ = False

    def __init__(self, name: str, image: VmImage):
        self.name, self.image = name, image
        testhost.HOSTS_DIR.mkdir(parents=True, exist_ok=True)
        self.workdir = Path(tempfile.mkdtemp(prefix=f"vm-{name}-", dir=testhost.HOSTS_DIR))
        self.key = self.workdir / "id_ed25519"
        self.log = self.workdir / "console.log"
        self.ssh_port, self.http_port = free_port(), free_port()
        self.qemu: subprocess.Popen | None = None
        self.accel = ""
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "test", "-f", str(self.key)],
                       check=True)

    # --- lifecycle -----------------------------------------------------------------

    def boot(self) -> float:
        """Starts qemu and waits for a running system; returns the seconds it took."""
        self.accel = accelerator(self.image)
        kvm_cpu = self.accel.removeprefix("kvm:") if self.accel.startswith("kvm:") else None
        cpu = ["-cpu", kvm_cpu or "max"]
        accel = "kvm" if kvm_cpu else "tcg,thread=multi"
        forwards = f"hostfwd=tcp:127.0.0.1:{self.ssh_port}-:22,hostfwd=tcp:127.0.0.1:{self.http_port}-:80"
        argv = ["qemu-system-x86_64", "-name", f"podku-{self.name}", "-accel", accel, *cpu,
                "-smp", str(CPUS), "-m", str(MEMORY_MIB), "-nodefaults", "-display", "none", "-no-reboot",
                "-kernel", str(self.image.kernel), "-initrd", str(self.image.initrd),
                "-append", "root=/dev/vda rw console=ttyS0 panic=-1 net.ifnames=1",
                "-drive", f"file={self.image.disk},if=virtio,format=raw,snapshot=on",
                # the base image tarball, read inside as /dev/vdb (faster than scp through slirp)
                "-drive", f"file={self.image.base_tar},if=virtio,format=raw,readonly=on",
                "-nic", f"user,model=virtio-net-pci,restrict=on,{forwards}",
                "-serial", f"file:{self.log}", "-monitor", "none"]
        started = time.monotonic()
        self.qemu = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=open(self.workdir / "qemu.err", "wb"), preexec_fn=_die_with_parent,
                                     env={**os.environ, "TMPDIR": str(self.workdir)})
        deadline = started + BOOT_TIMEOUT
        while time.monotonic() < deadline:
            if self.qemu.poll() is not None:
                raise RuntimeError(f"VM {self.name} exited while booting: {self.console_tail()}"
                                   f"{(self.workdir / 'qemu.err').read_text(errors='replace')}")
            state = self._ssh_root("systemctl is-system-running --wait", check=False, timeout=120)
            if state.stdout.strip() in ("running", "degraded"):
                return time.monotonic() - started
            time.sleep(2)
        raise RuntimeError(f"VM {self.name} did not boot in {BOOT_TIMEOUT}s: {self.console_tail()}")

    def prepare(self) -> None:
        """podku's source tree, the test key and the base image where install.sh wants them."""
        self.run(["mkdir", "-p", "/opt/podku-src/vagrant"])
        self.run(["tar", "-x", "-C", "/opt/podku-src"], input_bytes=source_tarball())
        self.run(["sh", "-c", "cat > /opt/test-key.pub"], input=Path(f"{self.key}.pub").read_text())
        size = self.image.base_tar.stat().st_size
        self.run(["sh", "-c", f"head -c {size} /dev/vdb > /var/tmp/podku-base.tar"])

    def destroy(self) -> None:
        """Kills qemu by its PID (its disk is a snapshot: nothing to shut down cleanly)."""
        try:
            if self.qemu is not None and self.qemu.poll() is None:
                self.qemu.terminate()
                try:
                    self.qemu.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.qemu.kill()
                    self.qemu.wait(timeout=30)
        finally:
            self.qemu = None
            subprocess.run(["rm", "-rf", str(self.workdir)], check=False)

    def console_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(FileNotFoundError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    # --- running things ----------------------------------------------------------------

    def _ssh_root(self, script: str, *, check: bool = True, input: str | bytes | None = None,
                  timeout: float = 600, text: bool = True) -> subprocess.CompletedProcess:
        argv = ["ssh", "-i", str(self.image.root_key), "-p", str(self.ssh_port), *SSH_OPTIONS,
                "root@127.0.0.1", script]
        try:
            return subprocess.run(argv, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=text, timeout=timeout, check=check)
        except subprocess.TimeoutExpired:
            if check:
                raise
            return subprocess.CompletedProcess(argv, 255, "", "timed out")

    def run(self, argv: list[str], *, check: bool = True, input: str | None = None,
            input_bytes: bytes | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
        """A command inside the VM, as root."""
        script = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 " + shlex.join(argv)
        if input_bytes is not None:
            result = self._ssh_root(script, check=False, input=input_bytes, timeout=timeout, text=False)
            result = subprocess.CompletedProcess(result.args, result.returncode,
                                                 result.stdout.decode(errors="replace"),
                                                 result.stderr.decode(errors="replace"))
        else:
            result = self._ssh_root(script, check=False, input=input, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"{argv} failed ({result.returncode}) in VM {self.name}:\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result

    def install(self, *extra: str, check: bool = True) -> subprocess.CompletedProcess:
        """podku installed the Vagrantfile's way: vagrant/provision.sh, which runs install.sh."""
        return self.run(["/opt/podku-src/vagrant/provision.sh", "--base-image-tar", "/var/tmp/podku-base.tar",
                         "--ssh-key", "/opt/test-key.pub", "--tls", "internal", *extra], timeout=1800,
                        check=check)

    # --- clients, on this machine through the forwarded ports ---------------------------

    def _client_ssh(self) -> list[str]:
        return ["ssh", "-i", str(self.key), "-p", str(self.ssh_port), *SSH_OPTIONS]

    def git_env(self) -> dict[str, str]:
        return {**os.environ, "GIT_SSH_COMMAND": shlex.join(self._client_ssh())}

    def remote(self, app: str) -> str:
        return f"{DEPLOY_USER}@127.0.0.1:{app}"

    def git(self, repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = no_traceback(subprocess.run(["git", "-C", str(repo), *args], env=self.git_env(), text=True,
                                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=1800))
        if check and result.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} failed ({result.returncode}):\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result

    def ssh(self, *words: str, check: bool = True) -> subprocess.CompletedProcess:
        """`ssh podku@VM WORDS`: a command through the forced-command entry."""
        result = no_traceback(subprocess.run([*self._client_ssh(), f"{DEPLOY_USER}@127.0.0.1", *words],
                                             text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                             timeout=1800))
        if check and result.returncode != 0:
            raise AssertionError(f"ssh {' '.join(words)} failed ({result.returncode}):\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result

    def http_get(self, host: str, path: str = "/", port: int = 80) -> tuple[int, str]:
        """GET through Caddy in the VM (its port 80, forwarded), with the given Host header."""
        assert port == 80, "only the VM's port 80 is forwarded"
        result = subprocess.run(["curl", "-sS", "--max-time", "60", "-o", "-", "-w", "\n%{http_code}",
                                 "-H", f"Host: {host}", f"http://127.0.0.1:{self.http_port}{path}"],
                                text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        body, _, status = result.stdout.rpartition("\n")
        return int(status or 0), body

    # --- what the VM's kernel says --------------------------------------------------------

    def meminfo(self) -> dict[str, int]:
        """/proc/meminfo in KiB."""
        lines = self.run(["cat", "/proc/meminfo"]).stdout.splitlines()
        return {line.split(":")[0]: int(line.split()[1]) for line in lines}

    def used_mib(self) -> float:
        """Memory in use (MemTotal - MemAvailable): what the kernel cannot give back at once."""
        info = self.meminfo()
        return (info["MemTotal"] - info["MemAvailable"]) / 1024

    def oom_kills(self) -> int:
        """The kernel's count of OOM kills since boot (memory cgroups' included)."""
        vmstat = dict(line.split() for line in self.run(["cat", "/proc/vmstat"]).stdout.splitlines())
        return int(vmstat.get("oom_kill", 0))

    @contextlib.contextmanager
    def peak_memory(self):
        """The highest MemTotal - MemAvailable inside the VM while the block runs, sampled
        twice a second by a transient unit in the VM; `.mib` once the block ends."""
        self._samplers = getattr(self, "_samplers", 0) + 1
        unit, path = f"podku-test-peak{self._samplers}", f"/run/podku-test-peak{self._samplers}"
        sampler = ("max=0; while :; do used=$(awk '/^MemTotal:/ {t=$2} /^MemAvailable:/ {a=$2} "
                   "END {print t-a}' /proc/meminfo); if [ \"$used\" -gt \"$max\" ]; then max=$used; "
                   f"echo $max > {path}; fi; sleep 0.5; done")
        self.run(["systemd-run", f"--unit={unit}", "--quiet", "sh", "-c", sampler])
        peak = _Peak()
        try:
            yield peak
        finally:
            self.run(["systemctl", "stop", unit], check=False)
            kib = self.run(["cat", path], check=False).stdout.strip()
            peak.mib = int(kib) / 1024 if kib.isdigit() else float("nan")


# Health checks a release started under TCG emulation passes: its first request starts the
# container (podman run, Python's start) at a tenth of native speed or less on a busy machine,
# past podku's default 5 attempts of 5 s. app.json is how an app asks for longer ones.
EMULATION_CHECKS = {"healthchecks": {"web": [{"path": "/", "timeout": 60, "attempts": 5, "wait": 5}]}}


class VmAppRepo(testhost.AppRepo):
    """The host tests' app repository, with an app.json whose health checks allow for emulation."""

    def __init__(self, path: Path, machine: VmHost, app: str):
        super().__init__(path, machine, app)
        (path / "app.json").write_text(json.dumps(EMULATION_CHECKS))


class _Peak:
    mib = float("nan")


def source_tarball() -> bytes:
    """podku's source tree (install.sh's input) and vagrant/provision.sh, as a tar."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for item in (*SOURCE_ITEMS, "vagrant/provision.sh"):
            path = REPO / item
            if path.exists():
                tar.add(path, arcname=item, filter=lambda info: None if IGNORED(
                    str(Path(info.name).parent), [Path(info.name).name]) else info)
    return out.getvalue()
