"""install.sh refuses bad options before it does anything: it runs here, on no host, with a
PATH that holds only what option parsing needs (sed for the usage text, dirname), so any step past
parsing (apt-get, useradd, systemctl, id) could not even start."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def bare_path(tmp_path) -> str:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sed", "dirname"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    return str(bin_dir)


@pytest.mark.parametrize("argv, reason", [
    (["--domain", "Bad Domain"], "invalid domain: Bad Domain"),
    (["--domain", "a;id"], "invalid domain"),
    (["--domain", "$(id)"], "invalid domain"),
    (["--domain", "../x"], "invalid domain"),
    (["--domain", "a\nb.com"], "invalid domain"),
    (["--http-port", "99999"], "invalid port: 99999"),
    (["--http-port", "0"], "invalid port"),
    (["--http-port", "80;id"], "invalid port"),
    (["--user", "../x"], "invalid user name: ../x"),
    (["--user", "-rf"], "invalid user name"),
    (["--user", "x" * 40], "invalid user name"),
    (["--tls", "none"], "invalid --tls none"),
    (["--acme-email", "not an address"], "invalid --acme-email"),
    (["--acme-ca", "http://ca.test/dir"], "expected an https:// URL"),
    (["--ssh-key", "/nonexistent/key.pub"], "cannot read the ssh key"),
    (["--base-image-tar", "/nonexistent.tar"], "cannot read /nonexistent.tar"),
    (["--bogus"], "unknown option --bogus"),
    (["--domain"], "--domain needs a value"),
])
def test_install_refuses_bad_options_before_doing_anything(bare_path, argv, reason):
    result = subprocess.run(["/bin/bash", str(REPO / "install.sh"), *argv], capture_output=True, text=True,
                            env={"PATH": bare_path, "LANG": "C.UTF-8"}, timeout=30)
    assert result.returncode != 0
    assert reason in result.stderr
    assert "command not found" not in result.stderr  # it stopped at parsing


def test_the_help_text_is_the_header():
    result = subprocess.run(["/bin/bash", str(REPO / "install.sh"), "--help"], capture_output=True, text=True,
                            env={"PATH": os.environ["PATH"]}, timeout=30)
    assert result.returncode == 0
    assert "--domain" in result.stdout and "--tls" in result.stdout
