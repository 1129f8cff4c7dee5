"""apps:export: the manifests of a Flask-like app (web and worker, cron, release task, storage,
limits, a custom domain) are valid Kubernetes objects (kubernetes-validate, offline, strict),
say what podku runs and hold no host path; the launcher hands a bound port over as fd 3; bad
input is one line and no output."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_lint import lint_tool

import fakes
from podku import apps, domains, releases
from podku.host import paths, templates
from podku.releases import Outcome, Release

LAUNCHER = Path(templates.UNITS_DIR) / "export" / "listen.py"
APP_JSON = {"cron": [{"command": "python3 tasks.py nightly", "schedule": "0 3 * * *"}],
            "scripts": {"dokku": {"predeploy": "python3 check.py"}},
            "healthchecks": {"web": [{"path": "/health", "attempts": 3, "timeout": 2, "wait": 4}]}}


@pytest.fixture
def host(home, monkeypatch):
    return fakes.install(monkeypatch)


def deployed(name: str = "shop", port: int | None = None, web: list[str] | None = None, **changes) -> Release:
    fakes.new_app(name)
    processes = {"worker": ["python3", "worker.py"], "release": ["flask", "db", "upgrade"]}
    if web:
        processes["web"] = web
    release = Release(app=name, id=3, rev="a" * 40, image=f"localhost/podku/{name}:r3", description="deploy",
                      config={"SECRET_KEY": "s3cr3t", "GREETING": "hi"}, app_json=APP_JSON, port=port,
                      outcome=Outcome.LIVE, processes=processes,
                      resources={"memory": 256 * 1024 ** 2, "cpus": 0.5}, mounts=["shop-files:/app/uploads"])
    releases.save(Release(**{**release.__dict__, **changes}))
    apps.save(apps.load(name).updated(live_release=3, scale={"worker": 2}))
    domains.save(name, domains.Domains(custom=["shop.example.com"]))
    return release


def export(capsys, *words: str) -> tuple[int, str, str]:
    return fakes.cli_run(capsys, "apps:export", *words)


def documents(text: str) -> dict[tuple[str, str], dict]:
    return {(doc["kind"], doc["metadata"]["name"]): doc for doc in yaml.safe_load_all(text)}


def validate(text: str, tmp_path: Path) -> None:
    manifest = tmp_path / "manifests.yaml"
    manifest.write_text(text)
    result = subprocess.run([lint_tool("kubernetes-validate"), "--strict", str(manifest)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_fd3_app_exports_valid_objects_that_say_what_podku_runs(host, capsys, tmp_path):
    deployed()
    host.podman.commands["localhost/podku/shop:r3"] = ["gunicorn", "app:app"]
    code, out, err = export(capsys, "shop")
    assert code == 0, err
    validate(out, tmp_path)
    found = documents(out)
    assert sorted(found) == sorted([
        ("Secret", "shop-config"), ("PersistentVolumeClaim", "shop-files"), ("Job", "shop-r3-deploy"),
        ("Deployment", "shop-web"), ("Deployment", "shop-worker"), ("Service", "shop-web"),
        ("Ingress", "shop-web"), ("CronJob", "shop-cron-1")])
    assert found["Secret", "shop-config"]["stringData"] == {"GREETING": "", "SECRET_KEY": ""}
    assert "s3cr3t" not in out and "--include-secrets" in err

    web = found["Deployment", "shop-web"]
    assert web["spec"]["replicas"] == 1 and web["metadata"]["labels"]["podku.release"] == "3"
    [container] = web["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "shop:r3"
    assert container["command"] == ["python3", "/podku/listen.py", "5000", "--", "gunicorn", "app:app"]
    assert container["ports"] == [{"name": "http", "containerPort": 5000, "protocol": "TCP"}]
    assert container["readinessProbe"]["httpGet"] == {"path": "/health", "port": 5000}
    assert container["readinessProbe"]["failureThreshold"] == 3
    assert container["resources"]["limits"] == {"memory": str(256 * 1024 ** 2), "cpu": "500m"}
    assert container["volumeMounts"] == [{"name": "shop-files", "mountPath": "/app/uploads"}]
    assert container["envFrom"] == [{"secretRef": {"name": "shop-config"}}]

    worker = found["Deployment", "shop-worker"]
    assert worker["spec"]["replicas"] == 2
    assert worker["spec"]["template"]["spec"]["containers"][0]["command"] == ["python3", "worker.py"]
    job = found["Job", "shop-r3-deploy"]["spec"]["template"]["spec"]
    assert [c["command"] for c in job["initContainers"]] == [["python3", "check.py"]]
    assert job["containers"][0]["command"] == ["flask", "db", "upgrade"]
    cron = found["CronJob", "shop-cron-1"]["spec"]
    assert cron["schedule"] == "0 3 * * *" and cron["concurrencyPolicy"] == "Forbid"
    assert [rule["host"] for rule in found["Ingress", "shop-web"]["spec"]["rules"]] == \
        ["shop.podku.localhost", "shop.example.com"]
    assert found["Service", "shop-web"]["spec"]["selector"] == web["spec"]["selector"]["matchLabels"]
    for hidden in (str(paths.HOME), "/.local/", "/.config/", "localhost/podku"):
        assert hidden not in out
    assert host.podman.pushed == []


def test_secrets_tls_and_sizes_when_asked(host, capsys, tmp_path):
    deployed(web=["gunicorn", "app:app"])
    code, out, err = export(capsys, "shop", "--include-secrets", "--tls-issuer", "letsencrypt",
                            "--ingress-class", "nginx", "--storage-size", "20Gi")
    assert code == 0, err
    validate(out, tmp_path)
    found = documents(out)
    assert found["Secret", "shop-config"]["stringData"] == {"GREETING": "hi", "SECRET_KEY": "s3cr3t"}
    ingress = found["Ingress", "shop-web"]
    assert ingress["metadata"]["annotations"] == {"cert-manager.io/cluster-issuer": "letsencrypt"}
    assert ingress["spec"]["tls"] == [{"hosts": ["shop.podku.localhost", "shop.example.com"],
                                       "secretName": "shop-tls"}]
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert found["PersistentVolumeClaim", "shop-files"]["spec"]["resources"]["requests"] == {"storage": "20Gi"}


def test_a_port_app_runs_as_it_is_and_its_image_is_tagged_and_pushed(host, capsys, tmp_path):
    deployed(port=8080)
    code, out, err = export(capsys, "shop", "--registry", "registry.example.com:5000/team")
    assert code == 0, err
    validate(out, tmp_path)
    [container] = documents(out)["Deployment", "shop-web"]["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "registry.example.com:5000/team/shop:r3"
    assert "command" not in container and container["ports"][0]["containerPort"] == 8080
    assert {"name": "PORT", "value": "8080"} in container["env"]
    assert host.podman.pushed == ["registry.example.com:5000/team/shop:r3"] and host.podman.layers == []
    assert host.podman.removed == ["registry.example.com:5000/team/shop:r3"]  # pushed, not kept


def test_an_fd3_apps_image_gets_the_launcher_layer_before_the_push(host, capsys):
    deployed(web=["gunicorn", "app:app"])
    code, _out, err = export(capsys, "shop", "--registry", "127.0.0.1:5000/podku")
    assert code == 0, err
    [(containerfile, image)] = host.podman.layers
    assert image == "127.0.0.1:5000/podku/shop:r3" and host.podman.pushed == [image]
    assert host.podman.removed == [image] and "localhost/podku/shop:r3" not in host.podman.removed
    assert "FROM localhost/podku/shop:r3\n" in containerfile and "COPY listen.py /podku/listen.py" in containerfile
    assert not any(line.startswith("RUN") for line in containerfile.splitlines())  # nothing of the image runs
    assert not (paths.CACHE / "export").exists() or not any((paths.CACHE / "export").iterdir())


def test_compose_has_a_service_per_process_type(host, capsys):
    deployed(web=["gunicorn", "app:app"])
    code, out, err = export(capsys, "shop", "--format", "compose")
    assert code == 0, err
    document = yaml.safe_load(out)
    assert sorted(document["services"]) == ["shop-web", "shop-worker"]
    web = document["services"]["shop-web"]
    assert web["ports"] == ["5000:5000"] and web["command"][:4] == ["python3", "/podku/listen.py", "5000", "--"]
    assert document["volumes"] == {"shop-files": {}} and "compose has no cron" in err


@pytest.mark.parametrize(("words", "message"), [
    (["nope"], "app nope does not exist"),
    (["fresh"], "fresh has not been deployed yet"),
    (["shop", "--format", "helm"], "unknown export format 'helm'"),
    (["shop", "--registry", "https://x/y"], "invalid registry"),
    (["shop", "--registry", "Reg.example/x"], "invalid registry"),
    (["shop", "--registry", "reg.example:99999/x"], "invalid registry"),
    (["shop", "--storage-size", "lots"], "invalid storage size"),
    (["shop", "--tls-issuer", "a b"], "invalid issuer name"),
])
def test_bad_input_is_one_line_and_no_output(host, capsys, words, message):
    deployed(web=["gunicorn", "app:app"])
    fakes.new_app("fresh")
    code, out, err = export(capsys, *words)
    assert code != 0 and out == "" and err.count("\n") == 1 and message in err, err
    assert host.podman.pushed == [] and host.podman.layers == []


def test_an_unreachable_registry_is_one_line_and_no_manifests(host, capsys):
    deployed(web=["gunicorn", "app:app"])
    host.podman.push_error = "podman push failed: connection refused"
    code, out, err = export(capsys, "shop", "--registry", "127.0.0.1:1/x")
    assert code != 0 and out == "" and err.count("\n") == 1 and "connection refused" in err


def test_the_launcher_passes_a_bound_port_as_fd_3_to_the_process_it_becomes():
    child = ("import os, socket; s = socket.socket(fileno=3); "
             "print(os.environ['LISTEN_FDS'], os.environ['LISTEN_PID'] == str(os.getpid()), "
             "s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN), s.getsockname()[1] > 0)")
    result = subprocess.run([sys.executable, str(LAUNCHER), "0", "--", sys.executable, "-c", child],
                            capture_output=True, text=True, timeout=30, env={**os.environ, "LISTEN_FDS": "9"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1", "True", "1", "True"]


def test_the_launcher_refuses_a_bad_command_line():
    result = subprocess.run([sys.executable, str(LAUNCHER), "x", "--", "true"], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode != 0 and "usage" in result.stderr


def test_the_validator_refuses_an_invalid_object(tmp_path):
    bad = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replicas: two, bogus: 1}\n"
    with pytest.raises(AssertionError, match="did not validate"):
        validate(bad, tmp_path)


def test_a_static_site_exports_its_image_as_a_web_service(host, capsys):
    """Caddy serves a static release's files on the host; its image (podku's small server)
    is what the export runs."""
    deployed(static_root="", processes={})
    host.podman.commands["localhost/podku/shop:r3"] = ["python3", "/usr/local/lib/podku/static-server.py", "/srv/www"]
    code, out, err = export(capsys, "shop", "--format", "compose")
    assert code == 0, err
    assert sorted(yaml.safe_load(out)["services"]) == ["shop-web"]
