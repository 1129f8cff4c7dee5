"""Every record is checked field by field where it is read (issue 14): hostile values in
each field of each record are one-line errors naming the file and the field, older files
still load, and what the commands write always passes the same schema."""

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import fakes
from podku import apps, domains, health, lifecycle, releases, sshkeys
from podku.errors import PodkuError, UsageError
from podku.host import paths, records, settings, state
from podku.image import builders, limits
from podku.runtime import idle, resources, storage

WHOLE = None  # a case that replaces the whole record, not one field


def app_dir() -> Path:
    return paths.AppPaths("web").root


def valid_release() -> dict:
    release = releases.Release(app="web", id=1, rev="a" * 40, image="localhost/podku/web:r1",
                               description="Deploy aaaaaaa", config={"A": "1"}, port=5000,
                               processes={"web": ["gunicorn", "app:app"], "worker": ["python3", "w.py"]},
                               resources={"memory": 256 * 1024 ** 2, "cpus": 0.5, "pids": 256},
                               mounts=["files:/srv"], idle_timeout=300)
    return json.loads(json.dumps(dataclasses.asdict(release)))


# record: (its file, a valid content, how podku reads it)
RECORDS: dict[str, tuple[Callable[[], Path], Callable[[], Any], Callable[[], Any]]] = {
    "app": (lambda: app_dir() / "app.json", lambda: dataclasses.asdict(apps.App(name="web")),
            lambda: apps.load("web")),
    "release": (lambda: app_dir() / "releases" / "1.json", valid_release, lambda: releases.load("web", 1)),
    "releases": (lambda: app_dir() / "releases" / "1.json", valid_release, lambda: releases.all_of("web")),
    "domains": (lambda: app_dir() / "domains.json", lambda: {"default": True, "custom": ["www.example.com"]},
                lambda: domains.load("web")),
    "config": (lambda: app_dir() / "config.json", lambda: {"A": "1", "B_2": "x y"}, lambda: apps.config("web")),
    "resources": (lambda: app_dir() / "resources.json", lambda: {"memory": 268435456, "cpus": 0.5, "pids": 64},
                  lambda: resources.app_limits("web")),
    "global-resources": (lambda: paths.CONFIG / "resources.json", lambda: {"memory": 268435456},
                         lambda: resources.global_defaults()),
    "storage": (lambda: app_dir() / "storage.json", lambda: ["files:/srv"], lambda: storage.mounts("web")),
    "idle": (lambda: app_dir() / "idle.json", lambda: {"idle_timeout": 300}, lambda: idle.timeout("web")),
    "global-idle": (lambda: paths.CONFIG / "idle.json", lambda: {"idle_timeout": 0}, lambda: idle.global_default()),
    "limits": (lambda: paths.CONFIG / "limits.json", lambda: {"build_timeout": 600}, lambda: limits.load()),
    "settings": (lambda: paths.SETTINGS, lambda: dataclasses.asdict(settings.Settings()), lambda: settings.load()),
    "builder": (lambda: app_dir() / "builder.json", lambda: {"builder": "python"}, lambda: builders.selected("web")),
    "builders": (lambda: paths.CONFIG / "builders.json", lambda: {"pip-index-url": "https://pypi.example/simple"},
                 lambda: builders.global_settings()),
}

NEWLINE_PORT = "5000\nExecStartPre=/bin/sh -c 'touch /tmp/pwned'"
HOSTILE_TEXT = [";", "$(id)", "../x", "--x", "a\nb", "\x1b[2J", "%h"]
WRONG_TYPES = [[], {}, True, 1.5]
DEEP: list = [1]
for _ in range(25):
    DEEP = [DEEP]
NOT_WHOLE_NUMBERS = ["5", True, 1.5, [], {}, 10 ** 30, -1]

CASES: list[tuple[str, str | None, Any]] = [
    *[("app", "name", value) for value in HOSTILE_TEXT + ["other", "x" * 100, 5, None, ["web"], "podku"]],
    *[("app", "live_release", value) for value in NOT_WHOLE_NUMBERS + [0, 10 ** 10]],
    *[("app", "keep_images", value) for value in NOT_WHOLE_NUMBERS + [0, 101]],
    *[("app", "created", value) for value in ["now", True, float("inf"), float("nan"), -5, [], 2 ** 60]],
    *[("app", "stopped", value) for value in ["yes", 1, 0, None, []]],
    *[("app", "scale", value) for value in [{"web;id": 1}, {"../x": 1}, {"web": "1"}, {"web": 11},
                                            {"web": True}, {"web": -1}, ["web"], "web=1",
                                            {f"t{n}": 1 for n in range(1001)}]],
    *[("app", "checks", value) for value in [{"path": "/\nx"}, {"path": "x"}, {"path": "/a b"}, {"timeout": "5"},
                                             {"timeout": 3601}, {"bogus": 1}, [], "on",
                                             {"enabled": "yes"}, {"content": "\x1b[2J"}, {"wait": 10 ** 9}]],
    *[("release", "port", value) for value in [NEWLINE_PORT, "5000", True, 0, 70000, 5000.5, [5000], {}]],
    *[("release", "app", value) for value in HOSTILE_TEXT + ["other", 5, None]],
    *[("release", "id", value) for value in [2, "1", True, 0, 1.0, None]],
    *[("release", "rev", value) for value in HOSTILE_TEXT + ["", "a" * 65, 5, None]],
    *[("release", "image", value) for value in HOSTILE_TEXT + ["localhost/podku/other:r1", "--privileged",
                                                               "localhost/podku/web:r1 --volume=/:/h",
                                                               "localhost/podku/web:r1\nExecStartPre=x", "img", 5]],
    *[("release", "description", value) for value in ["\x1b[2J", "a\nb", "x" * 70000, 5, None, []]],
    *[("release", "config", value) for value in [{"A\nB": "1"}, {"A": "1\rB=2"}, {"A": 1}, {"1A": "x"},
                                                 {"A;B": "x"}, {"A": "\x1b[2J"}, {"A": "x" * 40000}, ["A=1"],
                                                 {"": "x"}, {"A": None}]],
    *[("release", "processes", value) for value in [{"web": ["a\nb"]}, {"web;id": ["x"]}, {"web": "gunicorn"},
                                                    {"web": []}, {"web": ["\x1b[2J"]}, {"Web": ["x"]},
                                                    {"web": [1]}, {"web": ["x"] * 300}, ["web"]]],
    *[("release", "resources", value) for value in [{"memory": "1G"}, {"memory": 1}, {"cpus": True},
                                                    {"cpus": 10 ** 6}, {"pids": 10 ** 9}, {"bogus": 1}, [],
                                                    {"memory": 2 ** 60}]],
    *[("release", "mounts", value) for value in [["../x:/srv"], ["x:/proc"], ["x:relative"], "x:/srv",
                                                 ["x:/srv\nExecStart=y"], ["x:/srv/../etc"], ["x:/a b"],
                                                 ["x:/srv%h"], [5], ["x:/s"] * 40]],
    *[("release", "idle_timeout", value) for value in [1, 4, "300", True, 10 ** 9, -1, 1.5, None]],
    *[("release", "outcome", value) for value in ["owned", 1, None, "LIVE"]],
    *[("release", "app_json", value) for value in [[], "x", 5, {"a": DEEP},
                                                   {"a": "x" * (1024 * 1024 + 1)}]],
    *[("releases", "port", value) for value in [NEWLINE_PORT, "5000"]],
    *[("domains", "custom", value) for value in [["../../../../.ssh/authorized_keys"], ["a.example.com/x"],
                                                 ["A.EXAMPLE.COM"], ["x\n.com"], ["\x1b.com"], "a.com", [5],
                                                 ["a" * 300 + ".com"], ["%h.example.com"], ["a.com;id"],
                                                 ["$(id).example.com"], ["-x.example.com"], [".."], ["*.a.com"],
                                                 ["localhost"], [["a.com"]], ["a.com"] * 1001]],
    *[("domains", "default", value) for value in ["yes", 1, None]],
    *[("config", WHOLE, value) for value in [{"A\nB": "1"}, {"A": "1\rB=2"}, {"A": 1}, {"1A": "x"},
                                             {"PATH": "\x1b[2J"}, ["A=1"], "A=1", 5]],
    *[("resources", "memory", value) for value in ["512M", 1, True, 2 ** 60, 1.5]],
    *[("resources", "cpus", value) for value in ["1", 0, True, 10 ** 5, float("nan")]],
    *[("resources", "pids", value) for value in ["1", 1, 10 ** 9, 1.5]],
    *[("global-resources", "memory", value) for value in ["512M", 1]],
    *[("storage", WHOLE, value) for value in [["../x:/srv"], ["x:/proc/1"], ["x:/a\nb"], {"x": "/srv"}, "x:/srv",
                                              ["X:/srv"], ["x;id:/srv"], ["x:/srv"] * 33]],
    *[("idle", "idle_timeout", value) for value in [1, "5m", True, 10 ** 9, -1, None, 1.5]],
    *[("global-idle", "idle_timeout", value) for value in [2, "0"]],
    *[("limits", "build_timeout", value) for value in [10 ** 9, "10", True, 0, -1]],
    *[("limits", "push_max_bytes", value) for value in [10 ** 15, "1", 0]],
    *[("limits", "build_memory", value) for value in ["lots", "1G\n", 1024, "0M"]],
    *[("limits", "build_tasks", value) for value in [10 ** 9, 0, "512"]],
    *[("settings", "domain", value) for value in ["evil\n.com", "../x", "a.com/x", "A.COM", 5, "%h.com", "x;id"]],
    *[("settings", "http_port", value) for value in ["80", 0, 70000, True]],
    *[("settings", "https_port", value) for value in ["443", 0, 70000]],
    *[("settings", "tls", value) for value in ["none", 1, "auto\n"]],
    *[("settings", "acme_ca", value) for value in ["http://x", "https://x y", "https://x\n", 5]],
    *[("settings", "acme_email", value) for value in ["a b@c", "a@b\n", "x" * 300]],
    *[("settings", "acme_ca_root", value) for value in ["relative.pem", "/a\nb"]],
    *[("builder", "builder", value) for value in ["evil", "auto", 1, "python\n"]],
    *[("builders", "pip-index-url", value) for value in ["file:///etc/passwd", "https://u:p@x/", "https://x y",
                                                         "https://x/\n", 5]],
    *[(name, WHOLE, value) for name in RECORDS for value in ([], "x", 5, True)
      if not (name in ("storage",) and value == [])],
    *[(name, "no_such_field", 1) for name in RECORDS if name not in ("config", "storage", "builders")],
]


def write(name: str, content: Any) -> Path:
    path = RECORDS[name][0]()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content))
    return path


@pytest.fixture
def web(home) -> None:
    fakes.new_app("web")


def test_every_valid_record_loads(web):
    for name, (_, valid, load) in RECORDS.items():
        write(name, valid())
        load()


@pytest.mark.parametrize("name, field, value", CASES,
                         ids=[f"{name}-{field}-{index}" for index, (name, field, value) in enumerate(CASES)])
def test_a_hostile_value_is_a_one_line_error_naming_file_and_field(web, name, field, value):
    content = value if field is WHOLE else {**RECORDS[name][1](), field: value}
    path = write(name, content)
    with pytest.raises(PodkuError) as refused:
        RECORDS[name][2]()
    message = str(refused.value)
    assert str(path) in message
    assert field is WHOLE or field in message
    assert "\n" not in message and "\x1b" not in message and len(message) < 1200
    assert isinstance(refused.value, (state.StateCorrupt, limits.LimitsError))


@pytest.mark.parametrize("name", ["app", "release"])
def test_a_missing_required_field_is_named(web, name):
    required = {"app": ["name"], "release": ["app", "id", "rev", "image", "description"]}[name]
    for field in required:
        content = {key: value for key, value in RECORDS[name][1]().items() if key != field}
        path = write(name, content)
        with pytest.raises(state.StateCorrupt, match=f"{path}.*{field} is missing"):
            RECORDS[name][2]()


def test_a_record_that_is_not_json_or_null_or_huge_is_refused(web, monkeypatch):
    path = write("app", None)
    with pytest.raises(state.StateCorrupt, match="found null"):
        apps.load("web")
    path.write_text("[" * 100000)
    with pytest.raises(state.StateCorrupt, match=str(path)):
        apps.load("web")
    monkeypatch.setattr(records, "MAX_RECORD_BYTES", 100)
    path.write_text(json.dumps(dataclasses.asdict(apps.App(name="web"))) + " " * 200)
    with pytest.raises(state.StateCorrupt, match="larger than"):
        apps.load("web")


# --- older files keep loading ------------------------------------------------------------

def test_records_older_podku_versions_wrote_still_load(web):
    write("app", {"name": "web", "created": 1700000000.5, "live_release": 3, "keep_images": 5,
                  "checks": {"enabled": True, "path": "/", "attempts": 5, "timeout": 5, "wait": 2,
                             "initial_delay": 0, "content": "", "wait_to_retire": 5}})
    assert apps.load("web").scale == {} and apps.load("web").stopped is False
    write("app", {"name": "web", "checks": {"timeout": 3600, "attempts": 3600}})  # checks:set allowed it once
    assert apps.load("web").health_checks.timeout == 3600
    write("release", {"app": "web", "id": 1, "rev": "b" * 40, "image": "localhost/podku/web:r1",
                      "description": "Deploy bbbbbbb", "config": {"A": "1"}, "app_json": {},
                      "created": 1700000000.5, "outcome": "live"})
    old = releases.load("web", 1)
    assert (old.port, old.processes, old.mounts, old.idle_timeout) == (None, {}, [], 0)
    write("release", {"app": "web", "id": 1, "rev": "b" * 40, "image": "localhost/podku/web:r1",
                      "description": "first"})
    assert releases.load("web", 1).outcome == releases.PENDING
    write("settings", {"domain": "example.com", "http_port": 8080})
    assert settings.load().https_port == 443
    write("domains", {"default": False})
    assert domains.load("web") == domains.Domains(default=False)
    write("domains", {"custom": ["1.2.3.4", "xn--bcher-kva.example"]})
    assert domains.load("web").custom == ["1.2.3.4", "xn--bcher-kva.example"]
    write("resources", {"memory": None, "cpus": 1})
    assert resources.app_limits("web") == resources.ContainerLimits(cpus=1)
    write("builder", {})
    assert builders.selected("web") is None


def test_what_the_commands_write_passes_the_same_schemas(web):
    """Every dataclass field has a check: a field added without one fails here."""
    for name, record in (("app", apps.App(name="web")), ("settings", settings.Settings())):
        write(name, json.loads(json.dumps(dataclasses.asdict(record))))
        RECORDS[name][2]()
    release = releases.new("web", "c" * 40, "localhost/podku/web:r1", "Deploy", {"A": "1"})
    assert releases.load("web", release.id) == release
    assert records.covers(apps.schema("web"), apps.App)
    assert records.covers(releases.schema("web", 1), releases.Release)
    assert health.Checks.from_dict(health.Checks().to_dict()) == health.Checks()
    assert limits.load() == limits.BuildLimits()


def test_a_command_cannot_write_what_load_would_refuse(web):
    with pytest.raises(state.StateCorrupt):
        apps.save_config("web", {"A": "1\rB"})
    with pytest.raises(state.StateCorrupt):
        domains.save("web", domains.Domains(custom=["../../x"]))
    with pytest.raises(state.StateCorrupt):
        releases.save(releases.Release(app="web", id=1, rev="a", image="localhost/podku/web:r1",
                                       description="d", port=NEWLINE_PORT))  # type: ignore[arg-type]
    assert not (app_dir() / "config.json").exists() and not (app_dir() / "releases" / "1.json").exists()


# --- names that become paths -------------------------------------------------------------

def test_an_app_record_naming_another_directory_is_refused(home):
    fakes.new_app("web")
    fakes.new_app("other")
    write("app", {**dataclasses.asdict(apps.App(name="web")), "name": "other"})
    with pytest.raises(state.StateCorrupt, match="field name"):
        apps.load("web")


def test_directories_that_are_not_app_names_are_not_apps(home):
    fakes.new_app("web")
    for odd in ("Web", "x;y", "podku", "a-r1"):
        (paths.APPS / odd).mkdir()
        (paths.APPS / odd / "app.json").write_text("{}")
    assert apps.all_names() == ["web"]


def test_a_link_is_only_made_for_a_checked_name(home):
    fakes.new_app("web")
    for name in ("../../../../.ssh/authorized_keys", "a/b.com", ".."):
        with pytest.raises(UsageError):
            domains.link(name, "web")
    with pytest.raises(UsageError):
        domains.unlink("../x")
    assert not paths.SSH_AUTHORIZED_KEYS.exists()


def test_destroy_of_an_app_with_a_crafted_release_record_unlinks_nothing(home, monkeypatch):
    fakes.install(monkeypatch)
    fakes.new_app("web")
    victim = home / "victim"
    victim.write_text("keep")
    write("release", {**valid_release(), "app": "../../../../victim"})
    with pytest.raises(state.StateCorrupt, match="field app"):
        lifecycle.destroy("web")
    assert victim.read_text() == "keep" and apps.exists("web")


def test_an_env_file_is_never_written_with_a_line_break(home):
    release = releases.Release(app="web", id=1, rev="a", image="localhost/podku/web:r1", description="d",
                               config={"A": "1\nHOME", "B": "2"})
    assert release.environment_file().splitlines() == ["B=2", "PODKU_APP=web", "PODKU_RELEASE=1"]
    assert release.secrets() == {"podku-web-r1-env-A": "1\nHOME"}  # a value with a line break: a secret
    with pytest.raises(UsageError, match="control characters"):
        dataclasses.replace(release, config={"A": "1\rHOME"}).environment_file()
    with pytest.raises(UsageError):
        dataclasses.replace(release, config={"A\nB": "1"}).environment_file()


# --- keys ----------------------------------------------------------------------------------

def test_a_podku_key_line_podku_would_not_write_is_refused(home):
    paths.SSH_AUTHORIZED_KEYS.parent.mkdir(parents=True)
    good = 'command="/x/podku ssh-command",restrict ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA podku-key:alice'
    paths.SSH_AUTHORIZED_KEYS.write_text(f"ssh-rsa AAAA operator@own\n{good}\n")
    assert sshkeys.names() == ["alice"]
    for bad in ("podku-key:\x1b[2J", "podku-key:../x", "podku-key:a;b", "podku-key:%h"):
        paths.SSH_AUTHORIZED_KEYS.write_text(f"{good}\n{good.rsplit(' ', 1)[0]} {bad}\n")
        with pytest.raises(state.StateCorrupt, match="line 2") as refused:
            sshkeys.names()
        assert "\x1b" not in str(refused.value)


# --- the mechanism ---------------------------------------------------------------------------

def test_nested_fields_are_named_with_their_path(home):
    check = records.record({"a": records.Field(records.mapping(records.validated(str.strip),
                                                               records.list_of(records.integer(0, 1), 3), 5))})
    with pytest.raises(records.RecordInvalid, match=r"the state file f is invalid: field a\.k\[1\]: expected a whole"):
        records.validate({"a": {"k": [0, 2]}}, check, "f")
    with pytest.raises(records.RecordInvalid, match="unknown field 'b'"):
        records.validate({"b": 1}, check, "f")
