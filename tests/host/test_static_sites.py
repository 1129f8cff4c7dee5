"""Static sites served by Caddy's file server from the live release's files (issue 20): no
container, no socket; a redeploy, a switch to a container app and back, each under load
without a failed request; the SPA fallback; a pushed symlink to a secret never served."""

import re
import time

import testhost

DOMAIN = "podku.localhost"


def push_static(repo: testhost.AppRepo, message: str, extra: dict[str, str] | None = None,
                check: bool = True):
    """The test app's repository as a static site: public/, no Containerfile."""
    (repo.path / "Containerfile").unlink(missing_ok=True)
    for name, text in {"public/index.html": f"static {message}", "public/about/index.html": "about",
                       "public/app.js": "console.log(1)", "public/.env": "SECRET=hidden",
                       **(extra or {})}.items():
        (repo.path / name).parent.mkdir(parents=True, exist_ok=True)
        (repo.path / name).write_text(text)
    repo._git("add", "-A")
    repo._git("commit", "-q", "--allow-empty", "-m", f"static {message}")
    return repo.push(check=check)


def app_units_active(host, app: str) -> list[str]:
    listed = host.as_deploy_user(f"systemctl --user list-units --all --plain --no-legend '{app}*'").stdout
    return [line.split()[0] for line in listed.splitlines() if line.split()[2:3] == ["active"]]


def app_containers(host, app: str) -> list[str]:
    names = host.as_deploy_user("podman ps --format '{{.Names}}'").stdout.split()
    return [name for name in names if name.startswith(f"{app}-")]


def trees(host, app: str) -> set[str]:
    return set(host.as_deploy_user(f"ls -A ~/.local/share/podku/static/{app}/", check=False).stdout.split())


def wait_for(seen, wanted, timeout: float = 60) -> None:
    """Until seen() == wanted (retirements run wait-to-retire after a swap)."""
    deadline = time.monotonic() + timeout
    while (found := seen()) != wanted:
        assert time.monotonic() < deadline, f"still {found!r}, waiting for {wanted!r}"
        time.sleep(0.5)


def test_a_static_site_answers_with_no_container_and_through_redeploys_under_load(host, app_repo, load_run):
    app = app_repo.app
    name = f"{app}.{DOMAIN}"
    host.ssh("apps:create", app)
    host.ssh("checks:set", app, "wait-to-retire", "2")
    pushed = push_static(app_repo, "v1")
    assert "static builder" in pushed.stderr
    assert host.http_get(name) == (200, "static v1")
    assert host.http_get(name, "/about/") == (200, "about")
    assert host.http_get(name, "/.env")[0] == 404
    assert host.http_get(name, "/../../.ssh/authorized_keys")[0] == 404
    assert host.http_get(name, "/nowhere")[0] == 404
    assert app_containers(host, app) == [] and app_units_active(host, app) == []
    report = host.ssh("ps:report", app).stdout
    assert "static site" in report, report
    with load_run(app, post_answers=(405,)) as run:  # every 4th a POST: 405 from the files, 2xx from a container
        for number in (2, 3):
            push_static(app_repo, f"v{number}")
            assert host.http_get(name) == (200, f"static v{number}")
        time.sleep(1)
    run.assert_no_failures()
    assert {r["status"] for r in run.records if r["method"] == "POST"} == {405}
    print(f"static redeploys under load: {run.summary}")
    assert {bodies[-1] for bodies in run.body_sequences().values()} == {"static v3"}
    assert app_containers(host, app) == [] and app_units_active(host, app) == []
    wait_for(lambda: trees(host, app), {"r3", "live", "files", "no-socket"})  # r1, r2: retired, files gone

    host.ssh("rollback", app, "1")  # its files were removed at its retirement: written again
    assert host.http_get(name) == (200, "static v1")
    assert re.search(r"Static site: +yes", host.ssh("static:report", app).stdout)


def test_spa_fallback_answers_for_paths_without_a_file(host, app_repo):
    app = app_repo.app
    name = f"{app}.{DOMAIN}"
    push_static(app_repo, "spa")
    assert host.http_get(name, "/some/route")[0] == 404
    host.ssh("static:set", app, "fallback", "/index.html")
    assert host.http_get(name, "/some/route") == (200, "static spa")
    assert host.http_get(name, "/app.js") == (200, "console.log(1)")  # files still win
    assert host.http_get(name, "/about/") == (200, "about")
    assert host.http_get(name, "/.env") == (200, "static spa")  # hidden: not there, so the fallback
    assert "/index.html" in host.ssh("static:report", app).stdout
    for hostile in ("../../../.ssh/authorized_keys", "/../x", "/a\x01b", "/.env", "index.html"):
        result = host.ssh("static:set", app, "fallback", repr(hostile), check=False)
        assert result.returncode != 0 and len(result.stderr.strip().splitlines()) == 1, result
    host.ssh("static:unset", app, "fallback")
    assert host.http_get(name, "/some/route")[0] == 404
    post = host.in_netns(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-H", f"Host: {name}",
                          "--data-binary", "x=1", "http://127.0.0.1/"])
    assert post.stdout == "405"


def test_switching_a_static_site_to_a_container_app_and_back_under_load(host, app_repo, load_run):
    app = app_repo.app
    name = f"{app}.{DOMAIN}"
    host.ssh("apps:create", app)
    host.ssh("checks:set", app, "wait-to-retire", "2")
    push_static(app_repo, "s1")
    with load_run(app, post_answers=(405,)) as run:  # every 4th a POST: 405 from the files, 2xx from a container
        app_repo.deploy("container")
        assert host.http_get(name) == (200, "container r2")
        push_static(app_repo, "s3")
        assert host.http_get(name) == (200, "static s3")
        time.sleep(1)
    run.assert_no_failures()
    assert {r["status"] for r in run.records if r["method"] == "POST"} == {200, 405}
    print(f"static <-> container under load: {run.summary}")
    wait_for(lambda: (app_units_active(host, app), app_containers(host, app)), ([], []))
    wait_for(lambda: trees(host, app), {"r3", "live", "files", "no-socket"})


def test_a_pushed_symlink_to_a_secret_is_never_served(host, app_repo):
    app = app_repo.app
    name = f"{app}.{DOMAIN}"
    push_static(app_repo, "safe")
    link = app_repo.path / "public" / "keys"
    link.symlink_to("/home/podku/.ssh/authorized_keys")
    refused = push_static(app_repo, "linked", check=False)
    assert refused.returncode != 0 and "is a symlink" in refused.stderr, refused.stderr
    assert host.http_get(name) == (200, "static safe")
    code, body = host.http_get(name, "/keys")
    assert code == 404 and "ssh-" not in body
    assert trees(host, app) <= {"r1", "live", "files", "no-socket"}


def test_ps_stop_start_scale_and_logs_on_a_static_site(host, app_repo):
    app = app_repo.app
    name = f"{app}.{DOMAIN}"
    push_static(app_repo, "ps")
    stopped = host.ssh("ps:stop", app)
    assert "answers 502" in stopped.stderr + stopped.stdout
    assert host.http_get(name)[0] == 502
    host.ssh("ps:start", app)
    assert host.http_get(name) == (200, "static ps")
    scaled = host.ssh("ps:scale", app, "web=2", check=False)
    assert scaled.returncode != 0 and "static site" in scaled.stderr
    assert len(scaled.stderr.strip().splitlines()) == 1
    logs = host.ssh("logs", app, "-n", "5")
    assert "access log" in logs.stderr
