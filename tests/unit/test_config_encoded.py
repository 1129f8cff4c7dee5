"""config:set --encoded: values with line breaks (a PEM key) are stored as given, refused when
they are not base64 or carry another control character, printed escaped (or base64 with
config:get --encoded), and reach containers as podman secrets, never an env file or a unit."""

import base64
import json
import subprocess
import sys

import pytest

import fakes
from podku import apps, names, releases
from podku.cli import main as cli
from podku.errors import UsageError
from podku.host import paths, records, systemd

PEM = ("-----BEGIN PRIVATE KEY-----\nMIIBVQIBADANBgkqhkiG9w0BAQEFAASCAT8wggE7AgEAAkEAs0+'\"$(id)`\t\n"
       "-----END PRIVATE KEY-----\n")


def b64(text: str | bytes) -> str:
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


@pytest.fixture
def web(home, monkeypatch):
    monkeypatch.setattr(systemd, "manager", fakes.NoSystemd())
    monkeypatch.setitem(sys.modules, "pystemd", None)
    apps.save(apps.App(name="web"))


def podku(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_:
        cli.main(list(args))
    captured = capsys.readouterr()
    return exit_.value.code, captured.out, captured.err


def test_an_encoded_pem_is_stored_byte_for_byte(web, capsys):
    code, _out, err = podku(capsys, "config:set", "--encoded", "web", f"KEY={b64(PEM)}", f"PLAIN={b64('x=1')}")
    assert code == 0, err
    assert apps.config("web") == {"KEY": PEM, "PLAIN": "x=1"}


def test_get_shows_it_escaped_or_exact_with_encoded(web, capsys):
    apps.save_config("web", {"KEY": PEM})
    code, out, _ = podku(capsys, "config:get", "web", "KEY")
    assert code == 0 and out.count("\n") == 1 and "\\x0a" in out
    code, out, _ = podku(capsys, "config:get", "--encoded", "web", "KEY")
    assert code == 0 and base64.b64decode(out.strip()).decode() == PEM
    code, out, _ = podku(capsys, "config:show", "web")
    assert code == 0 and out.count("\n") == 2 and "BEGIN PRIVATE KEY-----\\x0aMII" in out


def test_exports_give_the_value_back(web, capsys):
    apps.save_config("web", {"KEY": PEM, "A": "b"})
    out = podku(capsys, "config:export", "web")[1]
    script = out + 'printf "%s" "$KEY"'
    assert subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True, env={}).stdout == PEM
    assert json.loads(podku(capsys, "config:export", "web", "--format", "json")[1]) == {"KEY": PEM, "A": "b"}
    envfile = podku(capsys, "config:export", "web", "--format", "envfile")[1].splitlines()
    assert envfile[0] == "A=b" and len(envfile) == 2 and envfile[1].startswith('KEY="-----BEGIN')
    assert json.loads(envfile[1].removeprefix("KEY=").replace("\t", "\\t")) == PEM


@pytest.mark.parametrize("encoded, why", [
    ("not base64!", "not base64"),
    ("YWJj\n", "not base64"),
    ("YWJ", "not base64"),
    (b64(b"\xff\xfe"), "not UTF-8"),
    (b64("a\x1b[31mb"), "\\x1b"),
    (b64("a\r\nb"), "\\x0d"),
    (b64("a\x00b"), "\\x00"),
    (b64("x" * (names.MAX_ENV_VALUE + 1)), "longer than"),
    ("A" * (4 * names.MAX_ENV_VALUE), "longer than"),
])
def test_bad_encoded_values_are_one_line_and_change_nothing(web, capsys, encoded, why):
    apps.save_config("web", {"OLD": "1"})
    code, out, err = podku(capsys, "config:set", "--encoded", "web", "OLD=", f"KEY={encoded}")
    assert code != 0 and why in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert apps.config("web") == {"OLD": "1"}


def test_a_plain_value_still_may_not_hold_a_line_break():
    with pytest.raises(UsageError, match="--encoded takes line breaks"):
        names.env_assignment("KEY=a\nb")


def test_the_config_record_takes_newlines_and_tabs_and_refuses_other_control_characters(tmp_path):
    assert records.environment({"KEY": PEM}) == {"KEY": PEM}
    assert records.environment({"OLD": "one line"}) == {"OLD": "one line"}  # an older record
    for bad in ("a\rb", "a\x1bb", "a\x7fb", "a\x00b", "a\u0085b"):
        with pytest.raises(records.Invalid):
            records.environment({"KEY": bad})


def test_a_release_carries_multi_line_values_as_secrets_never_in_its_env_file(web):
    release = releases.new("web", "abc123", "localhost/podku/web:r1", "test", {"KEY": PEM, "A": "b"})
    env_file = release.environment_file()
    assert "BEGIN" not in env_file and "KEY" not in env_file and "A=b\n" in env_file
    assert release.secrets() == {"podku-web-r1-env-KEY": PEM}
    assert "--secret=podku-web-r1-env-KEY,type=env,target=KEY" in release.podman_flags()
    loaded = releases.load("web", 1)  # the release record reads back
    assert loaded.config["KEY"] == PEM
    assert paths.AppPaths("web").release_record(1).exists()
