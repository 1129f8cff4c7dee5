"""VM tests: a 1 GiB Debian 12 virtual machine (qemu; KVM where it boots Linux, TCG
emulation otherwise) with a real kernel and cgroup v2, podku installed by
vagrant/provision.sh. They show what a systemd-nspawn host on this cgroup v1 machine cannot:
limits enforced by the kernel, and memory figures of a real 1 GiB machine.

Opt-in (TCG emulation is slow): PODKU_VM_TESTS=1 tests/run.sh tests/vm, or `-m vm`.
Otherwise every test here is skipped, with that reason."""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "host"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import vmhost

OPT_IN = "VM tests are opt-in (slow under TCG emulation): PODKU_VM_TESTS=1 or -m vm"


def vm_tests_wanted(config) -> bool:
    words = (config.getoption("markexpr", "") or "").split()
    return os.environ.get("PODKU_VM_TESTS") == "1" or ("vm" in words and "not" not in words)


def pytest_collection_modifyitems(config, items):
    wanted = vm_tests_wanted(config)
    for item in items:  # the tests that boot the VM; test_vagrant.py's boot nothing
        if "tests/vm/" in str(item.fspath) and {"vm", "vm_image"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.vm)
            if not wanted:
                item.add_marker(pytest.mark.skip(reason=OPT_IN))


@pytest.fixture(scope="session")
def vm_image():
    if os.geteuid() != 0:
        pytest.fail("VM tests need root (they build a disk image with mmdebstrap)")
    for tool in ("qemu-system-x86_64", "mmdebstrap", "mkfs.ext4", "ssh", "curl"):
        if shutil.which(tool) is None:
            pytest.fail(f"VM tests need {tool}: run tests/vm/install-deps.sh")
    return vmhost.VmImage()


@pytest.fixture(scope="session")
def vm(vm_image):
    """The VM, podku installed from scratch by vagrant/provision.sh; the install's figures are
    kept on it (vm.figures) for the tests that report them."""
    machine = vmhost.VmHost(f"vm{os.getpid() % 100000}", vm_image)
    try:
        machine.figures = {"boot_seconds": machine.boot(), "accel": machine.accel}
        machine.prepare()
        machine.figures["used_mib_before_install"] = machine.used_mib()
        with machine.peak_memory() as peak:
            started = time.monotonic()
            machine.figures["install_output"] = machine.install().stdout
            machine.figures["install_seconds"] = time.monotonic() - started
        machine.figures["install_peak_mib"] = peak.mib
        yield machine
    finally:
        machine.destroy()
