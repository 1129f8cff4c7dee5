"""Images built elsewhere, end to end on an installed host: an image built by the test from a
Containerfile, saved with `podman save`, sent with `git:load-image` over ssh, serves through
Caddy and rolls back; `git:from-image` pulls from a registry the test runs; `enter` and
`ps:inspect` look into the live app. Refusals: one line, non-zero, nothing changed."""

import io
import json
import subprocess
import tarfile

import pytest
from registry import Registry

from testhost import APPS_DIR, DEPLOY_USER, no_traceback

WORK = "/var/tmp/prebuilt"  # inside the host; /tmp there is a fresh tmpfs
REPOSITORY = "localhost/prebuilt/app"
PYTHON_BASE = "localhost/podku/python:3.11"


def ssh_with_input(host, words: list[str], data: bytes) -> subprocess.CompletedProcess:
    argv = ["ssh", "-i", str(host.key), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
            "podku@127.0.0.1", *words]
    result = subprocess.run(["ip", "netns", "exec", host.netns, *argv], input=data, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, timeout=600)
    return no_traceback(subprocess.CompletedProcess(result.args, result.returncode,
                                                    result.stdout.decode(errors="replace"),
                                                    result.stderr.decode(errors="replace")))


def assert_refused(result, reason: str) -> None:
    assert result.returncode != 0, result.stdout
    assert result.stderr.count("\n") == 1 and reason in result.stderr, result.stderr


def podman_id(host, image: str) -> str:
    return host.as_deploy_user(f"podman image inspect --format '{{{{.Id}}}}' {image}").stdout.strip()


@pytest.fixture(scope="module")
def saved_images(host):
    """Three images built by the test as the deploy user (an outside build: podku is not
    involved), each saved with `podman save`; the third pushed to the test's registry. Then
    their names are taken off the store, and the first name is given to another image: an
    archive that names it must not move it."""
    context = host.root / WORK.lstrip("/")
    context.mkdir(parents=True, exist_ok=True)
    (context / "testapp.py").write_bytes((APPS_DIR / "testapp.py").read_bytes())
    host.run(["chown", "-R", "podku:podku", WORK])
    served = Registry(host)
    served.trust_for(DEPLOY_USER)
    address = served.address
    saved = {}
    for number, message in ((1, "one"), (2, "two"), (3, "pulled")):
        (context / "Containerfile").write_text(f"FROM {PYTHON_BASE}\nCOPY testapp.py /app/testapp.py\n"
                                               f"ENV MESSAGE={message}\nCMD [\"python3\", \"/app/testapp.py\"]\n")
        tag = f"{REPOSITORY}:{number}"
        host.as_deploy_user(f"cd {WORK} && podman build --quiet --network=none --tag {tag} . && "
                            f"podman save --output {WORK}/{number}.tar {tag}")
        saved[number] = (context / f"{number}.tar").read_bytes()
    host.as_deploy_user(f"podman push --quiet --tls-verify=false {REPOSITORY}:3 {address}/team/app:3")
    host.as_deploy_user(f"podman rmi {REPOSITORY}:1 {REPOSITORY}:2 {REPOSITORY}:3 && "
                        f"podman tag {PYTHON_BASE} {REPOSITORY}:1")
    try:
        yield saved, address
    finally:
        host.as_deploy_user(f"podman untag {PYTHON_BASE} {REPOSITORY}:1", check=False)
        served.close()


def crafted(tags: list[str]) -> bytes:
    """An archive shaped like `podman save`'s, naming `tags`."""
    out = io.BytesIO()
    members = {"abc.json": b"{}", "layer/layer.tar": b"",
               "manifest.json": json.dumps([{"Config": "abc.json", "RepoTags": tags,
                                             "Layers": ["layer/layer.tar"]}]).encode()}
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def test_a_saved_image_serves_rolls_back_and_is_looked_into(host, saved_images, app_name):
    saved, _address = saved_images
    app = app_name
    host.ssh("apps:create", app)
    decoy = podman_id(host, f"{REPOSITORY}:1")
    store_before = host.as_deploy_user("podman images --format '{{.Repository}}:{{.Tag}} {{.ID}}' | sort").stdout

    loaded = ssh_with_input(host, ["git:load-image", app], saved[1])
    assert loaded.returncode == 0, loaded.stderr
    assert host.http_get(f"{app}.podku.localhost") == (200, "one r1")
    # the archive named localhost/prebuilt/app:1: that name still has the image it had
    assert podman_id(host, f"{REPOSITORY}:1") == decoy == podman_id(host, PYTHON_BASE)
    store_after = host.as_deploy_user("podman images --format '{{.Repository}}:{{.Tag}} {{.ID}}' | sort").stdout
    added = set(store_after.splitlines()) - set(store_before.splitlines())
    assert [line.split()[0] for line in added] == [f"localhost/podku/{app}:r1"], added

    assert ssh_with_input(host, ["git:load-image", app], saved[2]).returncode == 0
    assert host.http_get(f"{app}.podku.localhost") == (200, "two r2")
    listing = host.ssh("releases", app).stdout
    assert listing.count("image: load-image sha256:") == 2, listing

    host.ssh("rollback", app)
    assert host.http_get(f"{app}.podku.localhost") == (200, "one r3")

    # enter: a command in the live web container, its exit code passed on; stdin without a tty
    entered = host.ssh("enter", app, "--", "id")
    assert entered.stdout.startswith("uid="), entered.stdout
    failed = host.ssh("enter", app, "web", "1", "--", "sh", "-c", "'exit 7'", check=False)
    assert failed.returncode == 7, failed.stderr
    piped = ssh_with_input(host, ["enter", app], b"echo in-$PODKU_APP; exit 3\n")
    assert piped.returncode == 3 and piped.stdout.strip() == f"in-{app}", piped
    # root's `podku enter` on a terminal (script(1) gives it one) gets a terminal inside too
    on_terminal = host.run(["script", "-qec", f"podku enter {app} -- tty", "/dev/null"])
    assert "/dev/pts/" in on_terminal.stdout, on_terminal.stdout

    # ps:inspect: the live container, no config value
    secret = "s3cret-token-value-4711"
    host.ssh("config:set", app, f"SECRET_TOKEN={secret}")
    inspected = host.ssh("ps:inspect", app).stdout
    [container] = json.loads(inspected)
    assert container["Name"] == f"podku-{app}-r4"
    assert "SECRET_TOKEN=[redacted]" in container["Config"]["Env"]
    assert secret not in inspected


def test_refused_images_change_nothing(host, saved_images, app_name):
    saved, _address = saved_images
    app = app_name
    host.ssh("apps:create", app)
    assert ssh_with_input(host, ["git:load-image", app], saved[2]).returncode == 0
    names = f"podman images --format '{{{{.Repository}}}}:{{{{.Tag}}}} {{{{.ID}}}}' | grep -e {app} -e prebuilt | sort"
    before = (host.ssh("releases", app).stdout, host.as_deploy_user(names).stdout)

    assert_refused(ssh_with_input(host, ["git:load-image", app], b"just some text\n" * 1000),
                   "not an image archive")
    assert_refused(ssh_with_input(host, ["git:load-image", app], crafted(["localhost/podku/other:r1"])),
                   "podku's own names")
    assert_refused(ssh_with_input(host, ["git:load-image", app], crafted([PYTHON_BASE])), "podku's own names")
    host.as_deploy_user("echo '{\"image_max_bytes\": 100000}' > ~/.config/podku/limits.json")
    try:
        assert_refused(ssh_with_input(host, ["git:load-image", app], saved[1]), "larger than 100000 bytes")
    finally:
        host.as_deploy_user("rm ~/.config/podku/limits.json")
    for reference in ("$(id)", "localhost/podku/other:r1", "python:3.11", "a;id"):
        assert_refused(host.ssh("git:from-image", app, f"'{reference}'", check=False), "invalid image reference")

    after = (host.ssh("releases", app).stdout, host.as_deploy_user(names).stdout)
    assert after == before
    assert host.http_get(f"{app}.podku.localhost") == (200, "two r1")
    assert app not in host.as_deploy_user("ls -A ~/.cache/podku/build 2>/dev/null; true").stdout


def test_an_image_from_a_registry_serves(host, saved_images, app_name):
    _saved, address = saved_images
    app = app_name
    host.ssh("apps:create", app)
    reference = f"{address}/team/app:3"
    pulled = host.ssh("git:from-image", app, reference)
    assert "Pulling" in pulled.stderr or "Pulling" in pulled.stdout
    assert host.http_get(f"{app}.podku.localhost") == (200, "pulled r1")
    assert f"image: image {reference}" in host.ssh("releases", app).stdout
    # the store keeps podku's name of it only
    assert host.as_deploy_user(f"podman image exists {reference}", check=False).returncode == 1
    host.ssh("ps:rebuild", app)  # pulls it again
    assert host.http_get(f"{app}.podku.localhost") == (200, "pulled r2")
    assert host.ssh("releases", app).stdout.count(f"image: image {reference}") == 2
