"""Storage, resource limits and idle timeouts: parsing, validation, and how they reach a
release's units through the swap (against the fakes)."""

import json

import pytest

import fakes
from fakes import cli_run
from podku import apps, deploy, releases, swap
from podku.errors import UsageError
from podku.host import systemd
from podku.runtime import idle, resources, storage

# --- parsing ---------------------------------------------------------------------------

@pytest.mark.parametrize("text, size", [("512M", 512 * 2 ** 20), ("1G", 2 ** 30), ("1.5G", 3 * 2 ** 29),
                                        ("300m", 300 * 2 ** 20), ("64MB", 64 * 2 ** 20),
                                        ("100000000", 100000000)])
def test_sizes(text, size):
    assert resources.parse_size(text) == size


@pytest.mark.parametrize("text", ["12zb", "-1G", "0", "1K", "", "1e9", "1G;", "$(id)", "1 G", "1..5G",
                                  "99999999T", "5M", "0x10M", "１G"])
def test_bad_sizes_are_refused(text):
    with pytest.raises(UsageError):
        resources.parse_size(text)


@pytest.mark.parametrize("text", ["0", "-1", "nan", "inf", "1e3", "999", "0.001", ""])
def test_bad_cpus(text):
    with pytest.raises(UsageError):
        resources.parse_cpus(text)


@pytest.mark.parametrize("text", ["0", "15", "-5", "99999999", "1.5", "", "10;"])
def test_bad_pids(text):
    with pytest.raises(UsageError):
        resources.parse_pids(text)


def test_podman_flags_from_a_release_record():
    assert resources.podman_flags({"memory": 2 ** 28, "cpus": 0.5, "pids": 100}) == [
        "--memory=268435456", "--memory-swap=268435456", "--cpus=0.5", "--pids-limit=100"]
    assert resources.podman_flags({}) == []


@pytest.mark.parametrize("info, enforced", [("v1 []", False), ("v2 [cpuset cpu io memory pids]", True),
                                            ("v2 [cpuset io]", False), ("", False)])
def test_enforcement_follows_podman_info(info, enforced):
    assert (resources.enforcement_from(info) is None) == enforced


@pytest.mark.parametrize("text, seconds", [("0", 0), ("30s", 30), ("5m", 300), ("1h", 3600), ("45", 45),
                                           ("2d", 172800)])
def test_durations(text, seconds):
    assert idle.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["-5", "-5s", "1", "5x", "1.5m", "", "31d", "5m;", "$(id)", "5 m", "\n5m"])
def test_bad_durations_are_refused(text):
    with pytest.raises(UsageError):
        idle.parse_duration(text)


@pytest.mark.parametrize("text", ["data:/data", "my-db:/var/lib/postgresql/data", "x:/a.b/c_d"])
def test_mounts(text):
    name, path = storage.parse_mount(text)
    assert f"{name}:{path}" == text


@pytest.mark.parametrize("text", ["data", "data:", "data:relative", "data:/", "data:/a/../etc", "data:/a/./b",
                                  "data:/a/", "data://a", "data:/proc", "data:/proc/x", "data:/sys/fs",
                                  "data:/dev/shm", "../x:/a", "Data:/a", "a/b:/a", "data:/a:ro", "data:/a,b",
                                  "data:/a b", "data:/a\nb", "data:/a\x00", "data:/$(id)", "data:/a;b",
                                  "--:/a", "data:/" + "a" * 5000, "-data:/a"])
def test_bad_mounts_are_refused(text):
    with pytest.raises(UsageError):
        storage.parse_mount(text)


# --- through the swap (fakes) ------------------------------------------------------------

@pytest.fixture
def host(home, monkeypatch) -> fakes.FakeHost:
    fakes.new_app()
    monkeypatch.setattr(resources, "enforcement", lambda: "cgroup v1 (test)")
    return fakes.install(monkeypatch)


def push(rev: str = "a" * 40) -> releases.Release:
    with apps.lock("web"):
        return deploy.deploy_revision(apps.load("web"), rev)


def unit_text(release_id: int, suffix: str = ".service") -> str:
    return systemd.unit_file(f"web-r{release_id}{suffix}").read_text()


def test_a_release_records_the_default_memory_limit_and_passes_it_to_podman(host):
    release = push()
    assert release.resources == {"memory": resources.DEFAULT_MEMORY}
    assert f"--memory={resources.DEFAULT_MEMORY}" in unit_text(1)


def test_a_mount_is_a_new_release_and_rollbacks_keep_it(host, capsys):
    push()
    storage.ensure_directory("files")
    cli_ok(capsys, "storage:mount", "web", "files:/srv/files")
    assert f"--volume={storage.directory('files')}:/srv/files:U" in unit_text(2)
    assert apps.load("web").live_release == 2
    cli_ok(capsys, "rollback", "web", "1")
    assert releases.load("web", 3).mounts == ["files:/srv/files"]
    fakes.assert_consistent(host, "web")


def test_bad_input_changes_nothing(host, capsys):
    push()
    storage.ensure_directory("files")
    for args in (["storage:mount", "web", "files:/a/../b"], ["storage:mount", "web", "nope:/a"],
                 ["resource:limit", "web", "--memory", "12zb"], ["ps:set", "web", "idle-timeout", "-5"],
                 ["ps:set", "web", "idle-timeout", "5m;reboot"], ["ps:set", "web", "other", "1"],
                 ["storage:ensure-directory", "../x"], ["resource:limit", "web"],
                 ["storage:unmount", "web", "files:/a"]):
        code, _out, err = cli_run(capsys, *args)
        assert code != 0 and len(err.strip().splitlines()) == 1, (args, err)
    assert [r.id for r in releases.all_of("web")] == [1]
    assert storage.mounts("web") == [] and resources.app_limits("web") == resources.ContainerLimits()


def test_limits_are_stored_and_said_not_to_be_enforced(host, capsys):
    push()
    code, _out, err = cli_run(capsys, "resource:limit", "web", "--memory", "128M", "--pids", "64")
    assert code == 0 and "not enforced on this host: cgroup v1 (test)" in err
    assert releases.load("web", 2).resources == {"memory": 128 * 2 ** 20, "pids": 64}
    code, out, _ = cli_run(capsys, "resource:report", "web")
    assert "memory 128M, pids 64" in out and "not enforced on this host" in out
    cli_ok(capsys, "resource:clear", "web")
    assert releases.load("web", 3).resources == {"memory": resources.DEFAULT_MEMORY}
    cli_ok(capsys, "resource:limit", "--global", "--memory", "300M")
    assert resources.effective("web") == {"memory": 300 * 2 ** 20}


def test_an_idle_timeout_puts_a_proxy_in_front_of_an_fd3_app(host, capsys):
    push()
    cli_ok(capsys, "ps:set", "web", "idle-timeout", "30s")
    release = releases.load("web", 2)
    assert release.units == ["web-r2.socket", "web-r2.service", "web-r2-app.service", "web-r2-inner.socket"]
    assert "--exit-idle-time=30s" in unit_text(2) and "StopWhenUnneeded=yes" in unit_text(2, "-app.service")
    assert "Sockets=web-r2-inner.socket" in unit_text(2, "-app.service")
    assert "Service=web-r2-app.service" in unit_text(2, "-inner.socket")
    fakes.assert_consistent(host, "web")
    host.fire_retirements()
    cli_ok(capsys, "ps:set", "web", "idle-timeout", "0")
    host.fire_retirements()
    assert not systemd.unit_file("web-r2-inner.socket").exists()
    assert releases.load("web", 3).units == ["web-r3.socket", "web-r3.service"]


def test_old_release_records_still_load(home):
    fakes.new_app()
    releases.new("web", "a" * 40, "localhost/podku/web:r1", "old", {})
    path = apps.load("web").paths.release_record(1)
    text = path.read_text()
    for key in ("resources", "mounts", "idle_timeout"):
        text = text.replace(f'"{key}"', f'"x_{key}"')
    data = {k: v for k, v in json.loads(text).items() if not k.startswith("x_")}
    path.write_text(json.dumps(data))
    assert releases.load("web", 1).idle_timeout == 0 and swap.runtime_values(releases.load("web", 1))


def cli_ok(capsys, *args: str) -> str:
    code, out, err = cli_run(capsys, *args)
    assert code == 0, err
    return out
