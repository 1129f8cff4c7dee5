"""Egress (issue 16): outbound network without the host's loopback on every container of a
release, the setting as a new release, its records checked like every other, bad input
refused in one line (against the fakes)."""

import json
import re
import shlex

import pytest

import fakes
from fakes import cli_run
from podku import apps, cron, deploy, deploytasks, releases, stores
from podku.host import paths, records
from podku.releases import Release
from podku.runtime import network, resources


@pytest.fixture
def host(home, monkeypatch) -> fakes.FakeHost:
    fakes.new_app()
    monkeypatch.setattr(resources, "enforcement", lambda: None)
    return fakes.install(monkeypatch)


def push(rev: str = "a" * 40) -> Release:
    with apps.lock("web"):
        return deploy.deploy_revision(apps.load("web"), rev)


def networks_in(text: str) -> list[str]:
    return [word for line in text.splitlines() if line.startswith("ExecStart=")
            for word in shlex.split(line.partition("=")[2]) if word.startswith("--network")]


def release_unit_texts(release_id: int) -> dict[str, str]:
    return {path.name: path.read_text() for path in paths.SYSTEMD_UNITS.glob(f"web-r{release_id}*")
            if path.is_file() and not path.is_symlink()}


def cli_ok(capsys, *args: str) -> str:
    code, out, err = cli_run(capsys, *args)
    assert code == 0, err
    return out


# --- the default, and where it reaches -------------------------------------------------------

SLIRP = "--network=slirp4netns:allow_host_loopback=false"


def test_a_release_has_egress_by_default_and_every_container_gets_slirp_without_host_loopback(host):
    release = push()
    assert release.egress is True and release.network == network.EGRESS
    texts = release_unit_texts(1)
    podman_units = [name for name, text in texts.items() if "podman run" in text]
    assert podman_units
    for name in podman_units:
        assert networks_in(texts[name]) == [SLIRP], name  # exactly one network flag


def test_cron_and_tasks_get_the_releases_network(host):
    release = push()
    entry = cron.Entry(id=1, schedule="@daily", on_calendar="daily", argv=["./job"], command="./job")
    rendered = cron.render(release, entry, "/run/env")
    assert networks_in(rendered["web-cron@1.service"]) == [SLIRP]
    deploytasks.run_task(release, "predeploy", ["./migrate"], "/run/env")
    assert SLIRP in host.podman.tasks[-1]
    off = Release(app="web", id=9, rev="r", image="localhost/podku/web:r9", description="d", egress=False)
    deploytasks.run_task(off, "predeploy", ["./migrate"], "/run/env")
    assert "--network=none" in host.podman.tasks[-1] and SLIRP not in host.podman.tasks[-1]


# --- the setting ---------------------------------------------------------------------------

def test_egress_off_is_a_new_release_without_network_and_a_rollback_keeps_it_off(host, capsys):
    push()
    cli_ok(capsys, "network:set", "web", "egress", "off")
    assert apps.load("web").live_release == 2 and releases.load("web", 2).egress is False
    assert {flag for text in release_unit_texts(2).values() for flag in networks_in(text)} == {"--network=none"}
    report = cli_ok(capsys, "network:report", "web")
    assert re.search(r"Egress own:\s+off", report) and re.search(r"Live release network:\s+none", report)
    cli_ok(capsys, "rollback", "web", "1")  # old code, today's settings (as with mounts)
    assert releases.load("web", 3).egress is False
    fakes.assert_consistent(host, "web")


def test_the_global_default_applies_to_apps_without_their_own(host, capsys):
    push()
    cli_ok(capsys, "network:set", "--global", "egress", "off")
    assert network.egress("web") is False and releases.load("web", 1).egress is True  # next release only
    cli_ok(capsys, "network:set", "web", "egress", "on")
    assert network.egress("web") is True and releases.load("web", 2).egress is True
    report = cli_ok(capsys, "network:report", "web")
    assert re.search(r"Egress default:\s+off", report) and re.search(r"Egress own:\s+on", report)


@pytest.mark.parametrize("args", [
    ["network:set", "web", "egress", "maybe"], ["network:set", "web", "egress", "ON"],
    ["network:set", "web", "egress", "on\n"], ["network:set", "web", "egress", "on;reboot"],
    ["network:set", "web", "egres", "on"], ["network:set", "web", "egress"],
    ["network:set", "web", "egress", "on", "extra"], ["network:set", "--global", "web", "egress", "on"],
    ["network:set", "../web", "egress", "off"], ["network:set", "nope", "egress", "off"],
    ["network:set", "web\x1b[2J", "egress", "off"], ["network:report", "../x"], ["network:report", "nope"],
    ["network:set", "web", "--egress", "off"], ["network:set"],
])
def test_bad_input_is_one_line_and_changes_nothing(host, capsys, args):
    push()
    code, _out, err = cli_run(capsys, *args)
    assert code != 0 and len(err.strip().splitlines()) == 1, (args, err)
    assert "\x1b" not in err
    assert [r.id for r in releases.all_of("web")] == [1]
    assert network.app_setting("web") is None and network.global_default() is True


def test_a_failed_release_puts_the_old_setting_back(host, capsys):
    push()
    host.health.failing.add(2)
    code, _out, err = cli_run(capsys, "network:set", "web", "egress", "off")
    assert code != 0 and len(err.strip().splitlines()) == 1, err
    assert network.app_setting("web") is None and apps.load("web").live_release == 1


# --- records ---------------------------------------------------------------------------------

@pytest.mark.parametrize("data", [{"egress": "yes"}, {"egress": 1}, {"egress": None}, {}, {"egress": True, "x": 1},
                                  [True], "on"])
def test_a_crafted_setting_file_is_refused_naming_the_file(host, data):
    path = apps.load("web").paths.root / network.FILE_NAME
    path.write_text(json.dumps(data))
    with pytest.raises(records.RecordInvalid, match="network.json"):
        network.egress("web")
    paths.CONFIG.mkdir(parents=True, exist_ok=True)
    (paths.CONFIG / network.FILE_NAME).write_text(json.dumps(data))
    with pytest.raises(records.RecordInvalid, match="network.json"):
        network.global_default()


def test_the_stores_table_carries_the_setting_into_backups(host):
    assert stores.APP_STORES["network.json"][0] is network.RECORD
    assert stores.HOST_STORES["network.json"][0] is network.RECORD


@pytest.mark.parametrize("value", ["true", 1, None, "podku-other"])
def test_a_release_record_with_a_crafted_egress_is_refused(host, value):
    release = push()
    path = apps.load("web").paths.release_record(release.id)
    data = json.loads(path.read_text())
    data["egress"] = value
    path.write_text(json.dumps(data))
    with pytest.raises(records.RecordInvalid, match="field egress"):
        releases.load("web", release.id)


def test_a_release_recorded_before_egress_runs_without_network(host):
    release = push()
    path = apps.load("web").paths.release_record(release.id)
    data = {key: value for key, value in json.loads(path.read_text()).items() if key != "egress"}
    path.write_text(json.dumps(data))
    assert releases.load("web", release.id).network == "none"
