"""podman is reached through one seam (podku.host.podman.engine), as systemd is through
podku.host.systemd.manager: the in-memory podman of the unit tests answers every call the
real one has, and no other module runs podman by itself."""

import inspect
import re
from pathlib import Path

import fakes
from podku.host import podman

SRC = Path(__file__).resolve().parents[2] / "src" / "podku"
# a build's `podman build` runs inside its systemd scope (image/build.py passes the argv on)
ALLOWED = {"host/podman.py": "every call", "image/build.py": '"podman", "build"'}


def public_methods(cls) -> dict[str, list[str]]:
    return {name: list(inspect.signature(member).parameters) for name, member in vars(cls).items()
            if callable(member) and not name.startswith("_")}


def test_the_fake_answers_every_call_of_the_real_podman_with_the_same_parameters():
    real = public_methods(podman.RealPodman)
    assert real == {name: params for name, params in public_methods(fakes.FakePodman).items() if name in real}
    assert set(real) == {name for name in vars(podman.Podman) if not name.startswith("_")}


def test_no_module_but_the_seam_runs_podman():
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        where = str(path.relative_to(SRC))
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r'\[\s*"podman"', line) and where != "host/podman.py" and \
                    not (where in ALLOWED and ALLOWED[where] in line):
                offenders.append(f"{where}:{number}")
    assert offenders == []
