"""app.json cron entries: schedules converted to OnCalendar=, units derived from the live
release by reconcile, removed with the app."""

import json

import pytest

import fakes
from podku import appjson, apps, cron, deploy, reconcile
from podku.errors import UsageError
from podku.host import systemd


@pytest.mark.parametrize("schedule, calendar", [
    ("* * * * *", "*-*-* *:*:00"),
    ("*/15 * * * *", "*-*-* *:00,15,30,45:00"),
    ("5 4 * * 0", "Sun *-*-* 04:05:00"),
    ("5 4 * * 7", "Sun *-*-* 04:05:00"),
    ("30 8-18/2 * * 1-5", "Mon,Tue,Wed,Thu,Fri *-*-* 08,10,12,14,16,18:30:00"),
    ("0 0 1 */6 *", "*-01,07-01 00:00:00"),
    ("0 3/10 * * *", "*-*-* 03,13,23:00:00"),
    ("@daily", "daily"),
])
def test_schedules_convert(schedule, calendar):
    assert cron.on_calendar(schedule) == calendar


@pytest.mark.parametrize("schedule", ["* * * *", "60 * * * *", "* 24 * * *", "* * 0 * *", "* * * 13 *",
                                      "* * * * 8", "5-1 * * * *", "*/0 * * * *", "a * * * *", "0 0 1 * 1",
                                      "@reboot", "* * * * * *", "* * * * *\n", 5, None, "1;id * * * *",
                                      "x" * 200, "*/ * * * *"])
def test_bad_schedules_are_refused(schedule):
    with pytest.raises(cron.CronInvalid):
        cron.on_calendar(schedule)


@pytest.mark.parametrize("section", [{}, [1], [{"command": 1, "schedule": "* * * * *"}],
                                     [{"command": "x", "schedule": "* * *"}],
                                     [{"command": "x", "schedule": "* * * * *", "extra": 1}],
                                     [{"command": "x", "schedule": "* * * * *"}] * 21])
def test_bad_cron_sections_make_app_json_invalid(section):
    with pytest.raises(appjson.AppJsonInvalid, match="cron"):
        appjson.parse(json.dumps({"cron": section}))


def test_bad_scripts_make_app_json_invalid():
    with pytest.raises(UsageError, match="predeploy"):
        appjson.parse('{"scripts": {"dokku": {"predeploy": ["a"]}}}')


@pytest.fixture
def host(home, monkeypatch) -> fakes.FakeHost:
    return fakes.install(monkeypatch)


def test_timers_follow_the_live_release_and_go_with_the_app(host, monkeypatch):
    fakes.new_app()
    entries = {"cron": [{"command": "python3 task.py 'a b'", "schedule": "*/5 * * * *"}]}
    monkeypatch.setattr(deploy, "_app_json", lambda app, rev: entries)
    with apps.lock("web"):
        deploy.deploy_revision(apps.load("web"), "a" * 40)
    service = systemd.unit_file("web-cron@1.service").read_text()
    assert '"python3" "task.py" "a b"' in service and "localhost/podku/web:r1" in service
    timer = systemd.unit_file("web-cron@1.timer").read_text()
    assert "OnCalendar=*-*-* *:00,05,10,15,20,25,30,35,40,45,50,55:00" in timer
    assert "web-cron@1.timer" in systemd.enabled("timers.target")
    assert "web-cron@1.timer" in host.manager.active
    with apps.lock("web"):
        deploy.redeploy(apps.load("web"), "Restart")
    assert "localhost/podku/web:r1" in systemd.unit_file("web-cron@1.service").read_text()
    assert "releases/2.env" in systemd.unit_file("web-cron@1.service").read_text()
    monkeypatch.setattr(deploy, "_app_json", lambda app, rev: {})
    with apps.lock("web"):
        deploy.deploy_revision(apps.load("web"), "b" * 40)
    assert not systemd.unit_file("web-cron@1.timer").exists()
    assert systemd.enabled("timers.target") == []
    with apps.lock("web"):  # a rollback brings them back
        deploy.redeploy(apps.load("web"), "Rollback", source=deploy.releases.load("web", 2))
    assert systemd.unit_file("web-cron@1.timer").exists()
    cron.run_now(apps.load("web"), cron.find(apps.load("web"), deploy.live_release(apps.load("web")), "1"))
    assert host.manager.oneshots == ["web-cron@1.service"]
    with pytest.raises(cron.CronInvalid):
        cron.find(apps.load("web"), deploy.live_release(apps.load("web")), "2")
    cron.remove_all("web")
    assert not systemd.unit_file("web-cron@1.service").exists() and systemd.enabled("timers.target") == []
    assert reconcile.reconcile(apps.load("web"))  # doctor brings them back from the record
    assert systemd.unit_file("web-cron@1.timer").exists()
