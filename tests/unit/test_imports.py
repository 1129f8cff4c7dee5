"""The CLI and the pure modules must load without pystemd: heavy modules are imported lazily."""

import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
LIGHT = ["podku.cli", "podku.receive", "podku.proxy", "podku.apps", "podku.releases", "podku.health",
         "podku.sshkeys", "podku.settings", "podku.templates", "podku.history", "podku.build"]
HEAVY = ["pystemd", "podku.systemd", "podku.swap", "podku.deploy", "podku.lifecycle", "podku.hostsetup"]


def test_light_modules_do_not_pull_in_systemd():
    code = (f"import sys; sys.path.insert(0, {str(SRC)!r})\n"
            f"for name in {LIGHT!r}: __import__(name)\n"
            f"print(sorted(name for name in {HEAVY!r} if name in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
