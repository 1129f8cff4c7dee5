"""vagrant/: the Vagrantfile validates with Debian's vagrant, and it provisions with the very
script the VM tier installs podku with (vagrant/provision.sh), not a copy of it. Not opt-in:
no VM is booted (there is no VirtualBox or libvirt here; --ignore-provider)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import vmhost

VAGRANT_DIR = Path(__file__).resolve().parents[2] / "vagrant"


def validate(directory: Path, home: Path) -> subprocess.CompletedProcess:
    if shutil.which("vagrant") is None:
        pytest.fail("Debian's vagrant is not installed: tests/vm/install-deps.sh installs it")
    env = {**os.environ, "HOME": str(home), "VAGRANT_HOME": str(home / ".vagrant.d"),
           "VAGRANT_DOTFILE_PATH": str(home / "dotfile"), "VAGRANT_CHECKPOINT_DISABLE": "1"}
    return subprocess.run(["vagrant", "validate", "--ignore-provider"], cwd=directory, env=env,
                          capture_output=True, text=True, timeout=120)


def test_the_vagrantfile_validates_and_a_broken_one_does_not(tmp_path):
    good = validate(VAGRANT_DIR, tmp_path)
    assert good.returncode == 0 and "validated successfully" in good.stdout, good.stdout + good.stderr
    broken = tmp_path / "broken"
    shutil.copytree(VAGRANT_DIR, broken, ignore=shutil.ignore_patterns(".vagrant"))
    (broken / "provision.sh").unlink()  # the provisioner's script missing: vagrant must say so
    refused = validate(broken, tmp_path)
    assert refused.returncode != 0 and "provision.sh" in refused.stdout + refused.stderr


def test_the_vagrantfile_and_the_vm_tier_provision_with_one_script():
    vagrantfile = (VAGRANT_DIR / "Vagrantfile").read_text()
    provisioners = re.findall(r'^\s*config\.vm\.provision\s+"shell",\s*(.*)$', vagrantfile, re.MULTILINE)
    assert provisioners == ['path: "provision.sh", args: ["--example"]'], provisioners
    assert "inline" not in vagrantfile
    source = vmhost.source_tarball()
    assert b"vagrant/provision.sh" in source
    install = vmhost.VmHost.install.__code__.co_consts
    assert "/opt/podku-src/vagrant/provision.sh" in install
