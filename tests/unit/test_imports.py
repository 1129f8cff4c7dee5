"""Every module imports at the top, and none of them needs pystemd to load: it is imported
only inside systemd.py's real user manager, when podku first talks to systemd."""

import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"


def test_every_module_loads_without_pystemd():
    modules = sorted(".".join(path.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")
                     for path in (SRC / "podku").rglob("*.py") if path.stem != "__main__")
    code = (f"import sys; sys.path.insert(0, {str(SRC)!r}); sys.modules['pystemd'] = None\n"
            f"for name in {modules!r}: __import__(name)\n"
            "print('pystemd' in sys.modules and sys.modules['pystemd'] is not None)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_no_module_imports_podku_inside_a_function():
    offenders = [f"{path.name}:{number}" for path in sorted((SRC / "podku").rglob("*.py"))
                 for number, line in enumerate(path.read_text().splitlines(), 1)
                 if line.startswith((" ", "\t")) and line.strip().startswith(("from podku", "import podku"))]
    assert offenders == []


def test_every_command_is_defined_once():
    """click keeps the last of two commands of one name, silently: a feature would vanish."""
    import re
    defined = [name for path in sorted((SRC / "podku").rglob("*.py"))
               for name in re.findall(r'command\(\s*"([a-z:-]+)"', path.read_text())]
    assert sorted({name for name in defined if defined.count(name) > 1}) == []
