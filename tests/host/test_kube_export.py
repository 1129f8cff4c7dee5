"""apps:export over real ssh: a Flask+gunicorn app (Procfile web, worker and release, a cron
entry, a storage mount, limits, a custom domain) exports manifests that validate against the
Kubernetes schemas; its image, with the fd 3 launcher, goes to a real registry (registry.py)
and `podman kube play` of the exported Deployments pulls it from there, answers HTTP on the
exported port and runs the worker. A $PORT app likewise, without the launcher."""

import base64
import json
import os
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from builderapps import SourceRepo, flask_app
from registry import Registry

import testhost

PLAYED = ("PersistentVolumeClaim", "Deployment")  # what podman 4.3's kube play runs (the Secret: play())
WORKER = """import signal, sys, time
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
print("worker: started", flush=True)
while True:
    time.sleep(1)
"""
RELEASE = 'print("release: ran", flush=True)\n'


@pytest.fixture(scope="module")
def registry(builder_host):
    served = Registry(builder_host)
    served.trust_for(testhost.DEPLOY_USER)
    try:
        yield served
    finally:
        served.close()


def validate(text: str, tmp_path) -> None:
    manifest = tmp_path / "manifests.yaml"
    manifest.write_text(text)
    # the pinned test tools' venv (tests/lint-venv.sh, exported by tests/run.sh)
    validator = Path(os.environ["PODKU_LINT_VENV"]) / "bin" / "kubernetes-validate"
    result = subprocess.run([str(validator), "--strict", str(manifest)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def play(machine, app: str, manifests: str) -> None:
    """`podman kube play` (as the deploy user) of the claims and Deployments; the exported image
    is not in the local store (apps:export removes its name after the push): the play pulls it.
    The Secret goes in as podman 4.3 reads one: it keeps a played Secret as YAML and then
    reads it as JSON (podman issue 16269), so it is made with `podman secret create` as the
    JSON of its data, base64 values, as the API server stores its stringData."""
    documents = list(yaml.safe_load_all(manifests))
    [secret] = [doc for doc in documents if doc["kind"] == "Secret"]
    data = {key: base64.b64encode(value.encode()).decode() for key, value in secret["stringData"].items()}
    machine.run(["su", "-", testhost.DEPLOY_USER, "-c", "XDG_RUNTIME_DIR=/run/user/$(id -u) podman secret create "
                 f"{secret['metadata']['name']} -"], input=json.dumps(data))
    wanted = [doc for doc in documents if doc["kind"] in PLAYED]
    if "not enforced on this host" in machine.ssh("resource:report", app).stdout:
        # podman run ignores limits a host cannot enforce (cgroup v1, or controllers not
        # delegated); podman 4.3's kube play fails on them instead: played without
        for doc in wanted:
            for container in doc.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
                container.pop("resources", None)
    path = machine.root / "var" / "tmp" / f"{app}-kube.yaml"
    path.write_text(yaml.safe_dump_all(wanted))
    path.chmod(0o644)
    images = {c["image"] for doc in wanted if doc["kind"] == "Deployment"
              for c in doc["spec"]["template"]["spec"]["containers"]}
    for image in images:
        assert machine.as_deploy_user(f"podman image exists {image}", check=False).returncode == 1, image
    # slirp4netns: rootless podman's default bridge must turn on ip_forward, read-only in nspawn
    played = machine.as_deploy_user(f"podman kube play --network slirp4netns /var/tmp/{app}-kube.yaml",
                                    check=False)
    assert played.returncode == 0, played.stdout + played.stderr


def in_pod(machine, container: str, url: str, timeout: float = 60) -> str:
    """GET `url` from inside a played pod's network namespace (the exported port)."""
    script = f"import urllib.request; print(urllib.request.urlopen({url!r}, timeout=5).read().decode())"
    deadline = time.monotonic() + timeout
    while True:
        got = machine.as_deploy_user(f"podman exec {container} python3 -c {json.dumps(script)}", check=False)
        if got.returncode == 0 or time.monotonic() > deadline:
            assert got.returncode == 0, got.stdout + got.stderr
            return got.stdout.strip()
        time.sleep(1)


def published(machine) -> str:
    """GET the exported port as podman kube play publishes it on the test host (its loopback)."""
    got = machine.in_netns(["curl", "-sS", "--max-time", "10", "http://127.0.0.1:5000/"])
    assert got.returncode == 0, got.stderr
    return got.stdout


def logs_of(machine, container: str, wanted: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while True:
        logs = machine.as_deploy_user(f"podman logs {container}", check=False)
        if wanted in logs.stdout + logs.stderr or time.monotonic() > deadline:
            return logs.stdout + logs.stderr
        time.sleep(1)


def unplay(machine, app: str) -> None:
    machine.as_deploy_user(f"podman kube down /var/tmp/{app}-kube.yaml", check=False)


def test_a_flask_app_exports_valid_manifests_and_its_pushed_image_serves_under_kube_play(
        builder_host, registry, tmp_path, app_name):
    machine, app = builder_host, app_name
    machine.ssh("apps:create", app)
    machine.ssh("storage:ensure-directory", f"{app}-files")
    machine.ssh("storage:mount", app, f"{app}-files:/app/uploads")
    machine.ssh("resource:limit", app, "--memory", "256M", "--cpu", "0.5")
    machine.ssh("domains:add", app, f"shop.{app}.test")
    machine.ssh("config:set", app, "SECRET_KEY=s3cr3t")
    repo = SourceRepo(tmp_path / app, machine, app)
    files = flask_app("exported")
    files["Procfile"] = "web: gunicorn app:app\nworker: python3 worker.py\nrelease: python3 release.py\n"
    files["app.json"] = json.dumps({"cron": [{"command": "python3 release.py", "schedule": "0 3 * * *"}]})
    repo.write({**files, "worker.py": WORKER, "release.py": RELEASE})
    pushed = repo.push()
    assert "release: ran" in pushed.stderr

    exported = machine.ssh("apps:export", app, "--format", "kube", "--registry", f"{registry.address}/podku")
    text = exported.stdout
    validate(text, tmp_path)
    assert "/home/podku" not in text and ".local/share" not in text and "s3cr3t" not in text
    assert f"pushed {registry.address}/podku/{app}:r1" in exported.stderr
    kinds = sorted(doc["kind"] for doc in yaml.safe_load_all(text))
    assert kinds == ["CronJob", "Deployment", "Deployment", "Ingress", "Job", "PersistentVolumeClaim",
                     "Secret", "Service"]
    status, tags = registry.get(f"/v2/podku/{app}/tags/list")
    assert (status, json.loads(tags)) == (200, {"name": f"podku/{app}", "tags": ["r1"]})
    try:
        play(machine, app, text)
        assert in_pod(machine, f"{app}-web-pod-0-web", "http://127.0.0.1:5000/") == "flask exported"
        assert published(machine) == "flask exported"
        assert "worker: started" in logs_of(machine, f"{app}-worker-pod-0-worker", "worker: started")
    finally:
        unplay(machine, app)


PORT_APP = """FROM localhost/podku/python:3.11
WORKDIR /srv
COPY index.html /srv/index.html
ENV PORT=5000
EXPOSE 5000
CMD ["python3", "-m", "http.server", "5000"]
"""


def test_a_port_app_is_pushed_as_it_is_and_serves_under_kube_play(builder_host, registry, tmp_path, app_name):
    """A $PORT app that listens on every address, as a pod behind a Service must."""
    machine, app = builder_host, app_name
    repo = SourceRepo(tmp_path / app, machine, app)
    repo.write({"Containerfile": PORT_APP, "index.html": "port app"})
    repo.push()
    exported = machine.ssh("apps:export", app, "--registry", f"{registry.address}/podku", "--include-secrets")
    validate(exported.stdout, tmp_path)
    [web] = [doc for doc in yaml.safe_load_all(exported.stdout) if doc["kind"] == "Deployment"]
    container = web["spec"]["template"]["spec"]["containers"][0]
    assert "command" not in container and container["ports"][0]["containerPort"] == 5000
    try:
        play(machine, app, exported.stdout)
        assert in_pod(machine, f"{app}-web-pod-0-web", "http://127.0.0.1:5000/") == "port app"
        assert published(machine) == "port app"
    finally:
        unplay(machine, app)


def test_bad_exports_are_one_line_and_print_no_manifests(builder_host, registry, app_name):
    machine = builder_host
    machine.ssh("apps:create", app_name)
    for words, message in ((["a;id"], "invalid app name"),
                           ([app_name], "has not been deployed yet"),
                           ([app_name, "--format", "$(id)"], "unknown export format"),
                           ([app_name, "--registry", "../x"], "invalid registry")):
        refused = machine.ssh("apps:export", *words, check=False)
        assert refused.returncode != 0 and refused.stdout == "", refused
        assert refused.stderr.count("\n") == 1 and message in refused.stderr, refused.stderr


def test_an_unreachable_registry_is_one_line(builder_host, registry, tmp_path, app_name):
    machine, app = builder_host, app_name
    repo = SourceRepo(tmp_path / app, machine, app)
    repo.write({"Containerfile": PORT_APP, "index.html": "unpushed"})
    repo.push()
    refused = machine.ssh("apps:export", app, "--registry", "127.0.0.1:1/podku", check=False)
    assert refused.returncode != 0 and refused.stdout == ""
    assert refused.stderr.count("\n") == 1 and "127.0.0.1:1/podku" in refused.stderr, refused.stderr
