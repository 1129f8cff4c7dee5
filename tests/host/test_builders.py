"""Apps without a Containerfile, pushed over real ssh to a booted host with no route out:
packages come from pkgserver.py, a mirror on the host's network (builderapps.PackageServer)."""

import json
import shlex
import time

import pytest
from builderapps import SourceRepo, flask_app, node_app, static_site, step_output, uvicorn_app

DOMAIN = "podku.localhost"


@pytest.fixture
def repo(tmp_path, builder_host, app_name):
    return SourceRepo(tmp_path / app_name, builder_host, app_name)


def host_of(app: str) -> str:
    return f"{app}.{DOMAIN}"


def release_record(machine, app: str, release: int) -> dict:
    return json.loads(machine.as_deploy_user(f"cat ~/.local/state/podku/apps/{app}/releases/{release}.json").stdout)


def test_flask_gunicorn_app_takes_the_socket_and_a_code_change_reuses_the_dependency_layer(builder_host, repo):
    repo.write(flask_app("v1"))
    first = repo.push()
    assert "No Containerfile: using the python builder" in first.stderr
    assert builder_host.http_get(host_of(repo.app)) == (200, "flask v1")
    assert release_record(builder_host, repo.app, 1)["port"] is None  # fd 3, no $PORT bridge
    status = builder_host.as_deploy_user(f"systemctl --user status {repo.app} --no-pager", check=False).stdout
    assert "gunicorn" in status and f"{repo.app}-r1-app.service" not in status

    repo.write(flask_app("v2"))
    second = repo.push()
    assert "Using cache" in step_output(second.stderr, "pip install")
    assert builder_host.http_get(host_of(repo.app)) == (200, "flask v2")

    repo.write(flask_app("v3", extra_requirements="six==1.16.0\n"))
    third = repo.push()
    assert "Using cache" not in step_output(third.stderr, "pip install")
    assert builder_host.http_get(host_of(repo.app)) == (200, "flask v3")
    rendered = builder_host.as_deploy_user("ls ~/.cache/podku/builders/").stdout.split()
    assert rendered and all(name.endswith(".Containerfile") for name in rendered)  # podku's, not the repo's


def test_uvicorn_app_gets_fd_3_added(builder_host, repo):
    repo.write(uvicorn_app("v1"))
    repo.push()
    assert builder_host.http_get(host_of(repo.app)) == (200, "uvicorn v1")
    assert release_record(builder_host, repo.app, 1)["port"] is None
    cmd = builder_host.as_deploy_user(f"podman image inspect --format '{{{{json .Config.Cmd}}}}' "
                                      f"localhost/podku/{repo.app}:r1").stdout
    assert json.loads(cmd) == ["uvicorn", "main:app", "--fd", "3"]


def test_node_app_binds_port_through_the_bridge_and_reuses_npm_ci(builder_host, repo):
    repo.write(node_app("v1"))
    first = repo.push()
    assert "No Containerfile: using the node builder" in first.stderr
    assert "npm ci" in first.stderr
    assert builder_host.http_get(host_of(repo.app)) == (200, "node true v1")
    assert release_record(builder_host, repo.app, 1)["port"] == 5000
    repo.write(node_app("v2"))
    second = repo.push()
    assert "Using cache" in step_output(second.stderr, "npm ci")
    assert builder_host.http_get(host_of(repo.app)) == (200, "node true v2")


def test_static_site_is_served_from_public_without_dotfiles(builder_host, repo):
    repo.write({**static_site("v1"), "public/.hidden": "secret"})
    result = repo.push()
    assert "No Containerfile: using the static builder" in result.stderr
    assert builder_host.http_get(host_of(repo.app)) == (200, "static v1")
    assert builder_host.http_get(host_of(repo.app), "/.hidden")[0] == 404
    assert builder_host.http_get(host_of(repo.app), "/README.md")[0] == 404  # only public/ is served


def test_builder_set_forces_one_and_report_shows_both(builder_host, repo):
    repo.write({**flask_app("never"), **static_site("forced")})
    builder_host.ssh("apps:create", repo.app)
    builder_host.ssh("builder:set", repo.app, "static")
    assert "Using the static builder (set by builder:set)" in repo.push().stderr
    assert builder_host.http_get(host_of(repo.app)) == (200, "static forced")
    report = builder_host.ssh("builder:report", repo.app).stdout
    assert "Builder selected:" in report and "static" in report
    assert "Builder detected:           python" in report


def test_a_repository_no_builder_matches_is_rejected_naming_what_was_looked_for(builder_host, repo):
    repo.write({"README.md": "nothing to build\n", "pyproject.toml": "[project]\nname='x'\n"})
    result = repo.push(check=False)
    assert result.returncode != 0 and "pre-receive hook declined" in result.stderr
    for looked_for in ("Containerfile or Dockerfile", "requirements.txt", "uv.lock", "package.json",
                       "public/index.html", ".static"):
        assert looked_for in result.stderr
    assert builder_host.http_get(host_of(repo.app))[0] != 200


HOSTILE_BUILDERS = [";", "python;id", "$(id)", "../python", "--", "py\nthon", "x" * 5000, "python static"]
HOSTILE_URLS = ["http://a b/", "http://x/\nfile:///etc", "file:///etc/passwd", "ftp://x/", "$(id)", "--",
                "http://u:p@x/", "http://x/" + "a" * 5000]


def test_hostile_builder_input_is_refused_on_one_line_and_changes_nothing(builder_host, repo):
    builder_host.ssh("apps:create", repo.app)
    watched = (f"~/.local/state/podku/apps/{repo.app} ~/.config/podku/builders.json")
    before = builder_host.as_deploy_user(f"ls -la {watched}; cat ~/.config/podku/builders.json").stdout
    for value in HOSTILE_BUILDERS:
        refused = builder_host.ssh("builder:set", repo.app, shlex.quote(value), check=False)
        assert refused.returncode != 0, value
        assert len(refused.stderr.strip().splitlines()) == 1, (value, refused.stderr)
    for value in HOSTILE_URLS:
        for key in ("pip-index-url", "npm-registry"):
            refused = builder_host.ssh("builder:set-global", key, shlex.quote(value), check=False)
            assert refused.returncode != 0, value
            assert len(refused.stderr.strip().splitlines()) == 1, (value, refused.stderr)
    refused = builder_host.ssh("builder:set-global", shlex.quote("../pip"), "http://x/", check=False)
    assert refused.returncode != 0 and len(refused.stderr.strip().splitlines()) == 1
    assert builder_host.as_deploy_user(f"ls -la {watched}; cat ~/.config/podku/builders.json").stdout == before


def test_old_build_layers_go_with_old_images_and_the_live_dependency_layer_stays(builder_host, repo):
    """Removing a retired release's image (keep-images) removes its build layers too: podman
    removes an image's untagged parents no other image uses, and the retirement prunes what
    is dangling after that (failed builds' layers). Neither touches the live image's
    dependency layer, so the next code-only push reuses it."""
    repo.write(flask_app("p1", extra_requirements=f"# {repo.app}\n"))  # layers no other app shares
    repo.push()
    repo.write(flask_app("p2", extra_requirements="six==1.16.0\n"))
    repo.push()
    count = "podman images --all --quiet | wc -l"
    dangling = "podman images --filter dangling=true --quiet | wc -l"
    before = int(builder_host.as_deploy_user(count).stdout)
    builder_host.ssh("releases:set", repo.app, "keep-images", "1")
    deadline = time.monotonic() + 60  # r1 is retired after wait-to-retire, then its image removed
    image = f"localhost/podku/{repo.app}:r1"
    while (builder_host.as_deploy_user(f"podman image exists {image}", check=False).returncode == 0
           or int(builder_host.as_deploy_user(dangling).stdout) > 0):
        assert time.monotonic() < deadline, "release 1's image or dangling build layers were left"
        time.sleep(0.5)
    after = int(builder_host.as_deploy_user(count).stdout)
    assert after < before - 1, (before, after)  # more than the tagged image itself went
    repo.write(flask_app("p3", extra_requirements="six==1.16.0\n"))
    third = repo.push()
    assert "Using cache" in step_output(third.stderr, "pip install")
    assert builder_host.http_get(host_of(repo.app)) == (200, "flask p3")
