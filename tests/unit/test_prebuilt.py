"""Images built elsewhere (git:load-image, git:from-image) against the fakes: the archive
copied with its names left out, every refusal one line with nothing changed, and the release
path (swap, rollback, `releases`) the same as a push's."""

import gzip
import io
import json
import os
import sys
import tarfile

import pytest

import fakes
from podku import apps, deploy, releases
from podku.host import paths, records, state
from podku.image import limits, prebuilt

IMAGE_ID = "sha256:" + "cd" * 32


def archive(tags=("localhost/myapp:latest",), manifest=None, extra=(), compress=False, layer=b"x" * 100) -> bytes:
    """A docker-archive as `podman save` writes it (config, one layer, manifest.json)."""
    members = [("abc.json", b'{"config": {}}'), ("layer1/layer.tar", layer), *extra]
    if manifest is None:
        manifest = [{"Config": "abc.json", "RepoTags": list(tags), "Layers": ["layer1/layer.tar"]}]
    members.append(("manifest.json", json.dumps(manifest).encode()))
    members.append(("repositories", b'{"myapp": {"latest": "abc"}}'))
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(out.getvalue()) if compress else out.getvalue()


def received(tmp_path, data: bytes, app: str = "web", limit: int = 10 ** 6) -> dict[str, bytes]:
    target = tmp_path / "out" / "image.tar"
    prebuilt.receive_archive(io.BytesIO(data), target, app, limit)
    with tarfile.open(target) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def test_the_archive_is_copied_without_its_names(tmp_path):
    files = received(tmp_path, archive())
    assert json.loads(files["manifest.json"]) == [{"Config": "abc.json", "RepoTags": [],
                                                   "Layers": ["layer1/layer.tar"]}]
    assert "repositories" not in files and files["layer1/layer.tar"] == b"x" * 100


@pytest.mark.parametrize("tag", ["localhost/myapp:latest", "docker.io/library/python:3.11", "myapp",
                                 "localhost/podku/web:r3", "podku/web:latest"])
def test_names_of_its_own_or_of_no_one_on_the_host_are_accepted(tmp_path, tag):
    assert json.loads(received(tmp_path, archive(tags=[tag]))["manifest.json"])[0]["RepoTags"] == []


@pytest.mark.parametrize("tag", ["localhost/podku/other:r1", "localhost/podku/python:3.11", "podku/node:18",
                                 "localhost/podku/postgres:15", "docker.io/podku/base-x:1", "LOCALHOST/PODKU/OTHER:R1"])
def test_an_archive_naming_another_apps_or_podkus_image_is_refused(tmp_path, tag):
    with pytest.raises(prebuilt.ImageRefused, match="podku's own names"):
        received(tmp_path, archive(tags=[tag]))
    assert not (tmp_path / "out" / "image.tar").exists()


@pytest.mark.parametrize(("data", "reason"), [
    (b"hello, not a tar\n" * 100, "not an image archive"),
    (b"", "not an image archive"),
    (archive(manifest=[]), "exactly one image"),
    (archive(manifest=[{"Config": "a", "Layers": []}, {"Config": "b", "Layers": []}]), "exactly one image"),
    (archive(manifest={"Config": "a"}), "exactly one image"),
    (archive(manifest=[{"RepoTags": []}]), "no Config and Layers"),
    (archive(tags=["a\nb"]), "not an image name"),
    (archive(extra=[("../escape", b"x")]), "outside itself"),
    (archive(extra=[("/etc/passwd", b"x")]), "outside itself"),
])
def test_what_is_not_an_image_archive_is_refused(tmp_path, data, reason):
    with pytest.raises(prebuilt.ImageRefused, match=reason):
        received(tmp_path, data)
    assert not (tmp_path / "out" / "image.tar").exists()


def test_a_tar_without_a_manifest_is_refused(tmp_path):
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    with pytest.raises(prebuilt.ImageRefused, match="no manifest.json"):
        received(tmp_path, out.getvalue())


def test_links_and_special_files_outside_the_archive_are_refused(tmp_path):
    for kind, linkname in ((tarfile.SYMTYPE, "../../etc/shadow"), (tarfile.SYMTYPE, "/etc/shadow"),
                           (tarfile.LNKTYPE, "a/../../x"), (tarfile.CHRTYPE, ""), (tarfile.FIFOTYPE, "")):
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w") as tar:
            info = tarfile.TarInfo("layer1/link")
            info.type, info.linkname = kind, linkname
            tar.addfile(info)
        with pytest.raises(prebuilt.ImageRefused, match="outside itself|special file"):
            received(tmp_path, out.getvalue())


def test_a_link_inside_the_archive_is_kept(tmp_path):
    data = archive(extra=[("layer2/placeholder", b"")])
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(data)) as source, tarfile.open(fileobj=out, mode="w") as tar:
        for member in source.getmembers():
            tar.addfile(member, source.extractfile(member))
        info = tarfile.TarInfo("layer2/layer.tar")
        info.type, info.linkname = tarfile.SYMTYPE, "../layer1/layer.tar"
        tar.addfile(info)
    received(tmp_path, out.getvalue())


def test_an_archive_over_the_bound_is_refused_sent_or_unpacked(tmp_path):
    with pytest.raises(prebuilt.ImageRefused, match="larger than 5000 bytes"):
        received(tmp_path, archive(layer=b"x" * 6000), limit=5000)
    bomb = archive(layer=b"\0" * 200_000, compress=True)
    assert len(bomb) < 5000
    with pytest.raises(prebuilt.ImageRefused, match="larger than 5000 bytes"):
        received(tmp_path, bomb, limit=5000)
    assert not (tmp_path / "out" / "image.tar").exists()


def test_a_compressed_archive_is_read(tmp_path):
    assert "manifest.json" in received(tmp_path, archive(compress=True))


def test_the_bound_is_a_host_setting_with_a_default(home):
    assert limits.load().image_max_bytes == 2 * 1024 ** 3
    state.write_json(paths.CONFIG / limits.LIMITS_FILE_NAME, {"image_max_bytes": 1234})
    assert limits.load().image_max_bytes == 1234
    state.write_json(paths.CONFIG / limits.LIMITS_FILE_NAME, {"image_max_bytes": -1})
    with pytest.raises(limits.LimitsError):
        limits.load()


# --- the release path --------------------------------------------------------------------

@pytest.fixture
def host(home, monkeypatch) -> fakes.FakeHost:
    return fakes.install(monkeypatch)


def send(monkeypatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))


def test_load_image_is_a_release_through_the_swap(host, capsys, monkeypatch):
    fakes.new_app("web")
    seen = []
    host.podman.pull = lambda source, prefix=(): seen.append(source) or IMAGE_ID
    send(monkeypatch, archive())
    code, out, err = fakes.cli_run(capsys, "git:load-image", "web")
    assert code == 0, err
    [source] = seen
    assert source.startswith("docker-archive:") and source.endswith("/web-r1/image.tar")
    live = fakes.assert_consistent(host, "web")
    assert live.image == "localhost/podku/web:r1" and host.podman.tags[live.image] == IMAGE_ID
    assert live.source == f"load-image {IMAGE_ID}" and live.rev == "cd" * 32
    assert not (paths.BUILDS / "web-r1").exists()  # the received archive is gone
    code, out, _err = fakes.cli_run(capsys, "releases", "web")
    assert f"image: load-image {IMAGE_ID}" in out


def test_a_refused_archive_changes_nothing(host, capsys, monkeypatch):
    fakes.new_app("web")
    before = sorted(p for p in paths.STATE.rglob("*") if p.name != "lock")
    for data in (b"not a tar", archive(tags=["localhost/podku/other:r1"])):
        send(monkeypatch, data)
        code, _out, err = fakes.cli_run(capsys, "git:load-image", "web")
        assert code != 0 and err.count("\n") == 1 and "Traceback" not in err
        assert sorted(p for p in paths.STATE.rglob("*") if p.name != "lock") == before
    assert host.podman.tags == {} and not list(paths.BUILDS.glob("*"))


def test_an_image_release_rolls_back_and_forward_keeping_where_it_came_from(host, capsys, monkeypatch):
    fakes.new_app("web")
    with apps.lock("web"):
        deploy.deploy_revision(apps.load("web"), "a" * 40)
    send(monkeypatch, archive())
    assert fakes.cli_run(capsys, "git:load-image", "web")[0] == 0
    code, _out, err = fakes.cli_run(capsys, "rollback", "web")
    assert code == 0, err
    assert fakes.assert_consistent(host, "web").source == ""
    assert fakes.cli_run(capsys, "rollback", "web", "2")[0] == 0
    live = fakes.assert_consistent(host, "web")
    assert live.id == 4 and live.image == "localhost/podku/web:r2" and live.source.startswith("load-image ")
    code, _out, err = fakes.cli_run(capsys, "ps:rebuild", "web")
    assert code == 2 and "send it again" in err and releases.all_of("web")[0].id == 4


def test_ps_rebuild_of_a_registry_image_pulls_it_again(host, capsys):
    fakes.new_app("web")
    assert fakes.cli_run(capsys, "git:from-image", "web", "registry.example/app:1")[0] == 0
    code, _out, err = fakes.cli_run(capsys, "ps:rebuild", "web")
    assert code == 0, err
    assert [source for source, _prefix in host.podman.pulled] == ["registry.example/app:1"] * 2
    assert fakes.assert_consistent(host, "web").image == "localhost/podku/web:r2"


def test_from_image_pulls_in_a_bounded_scope_and_keeps_only_podkus_name(host, capsys):
    fakes.new_app("web")
    code, _out, err = fakes.cli_run(capsys, "git:from-image", "web", "registry.example:5000/team/app:1.2")
    assert code == 0, err
    [(source, prefix)] = host.podman.pulled
    assert source == "registry.example:5000/team/app:1.2"
    assert prefix[:3] == ["systemd-run", "--user", "--scope"] and "--unit=podku-build-web-r1" in prefix
    assert host.podman.untagged == ["registry.example:5000/team/app:1.2"]
    live = fakes.assert_consistent(host, "web")
    assert live.source == "image registry.example:5000/team/app:1.2"


def test_from_image_over_the_bound_is_refused_and_removed(host, capsys):
    fakes.new_app("web")
    state.write_json(paths.CONFIG / limits.LIMITS_FILE_NAME, {"image_max_bytes": 999})
    code, _out, err = fakes.cli_run(capsys, "git:from-image", "web", "registry.example/app:1")
    assert code == 2 and "larger than image_max_bytes" in err
    assert "localhost/podku/web:r1" not in host.podman.images and releases.all_of("web") == []


@pytest.mark.parametrize("reference", ["python:3.11", "localhost/podku/other:r1", "localhost:5000/x",
                                       "registry.example/../x", "registry.example/x;id", "-x", "--creds=a:b",
                                       "registry.example/X", "docker-archive:/etc/passwd", "x" * 300])
def test_from_image_refuses_what_is_not_a_full_registry_reference(host, capsys, reference):
    fakes.new_app("web")
    code, _out, err = fakes.cli_run(capsys, "git:from-image", "web", reference)
    assert code != 0 and err.count("\n") == 1
    assert host.podman.pulled == [] and releases.all_of("web") == []


# --- the record ----------------------------------------------------------------------------

def test_an_older_release_record_without_a_source_loads_unchanged(host):
    fakes.new_app("web")
    with apps.lock("web"):
        release = deploy.deploy_revision(apps.load("web"), "a" * 40)
    path = paths.AppPaths("web").release_record(release.id)
    data = json.loads(path.read_text())
    del data["source"]
    path.write_text(json.dumps(data))
    loaded = releases.load("web", release.id)
    assert loaded.source == "" and loaded.origin == "a" * 7


@pytest.mark.parametrize("source", ["load-image sha256:xyz", "image python:3.11", "image localhost/podku/a:r1",
                                    "git abc", "image registry.example/a\nb", 5])
def test_a_crafted_source_is_refused_where_the_record_is_read(host, source):
    fakes.new_app("web")
    with apps.lock("web"):
        release = deploy.deploy_revision(apps.load("web"), "a" * 40)
    path = paths.AppPaths("web").release_record(release.id)
    path.write_text(json.dumps({**json.loads(path.read_text()), "source": source}))
    with pytest.raises(state.StateCorrupt, match="source"):
        releases.load("web", release.id)


def test_records_schema_covers_the_release():
    assert records.covers(releases.schema("web", 1), releases.Release)


# --- enter and ps:inspect --------------------------------------------------------------------

@pytest.fixture
def deployed(host):
    fakes.new_app("web")
    with apps.lock("web"):
        deploy.deploy_revision(apps.load("web"), "a" * 40)
    return host


def test_enter_execs_into_the_live_web_container_and_passes_its_exit_code(deployed, capsys):
    deployed.podman.live[("web", 1)] = ["podku-web-r1", "podku-web-r1-web-2"]
    deployed.podman.exec_result = 3
    code, _out, err = fakes.cli_run(capsys, "enter", "web")
    assert code == 3, err
    assert deployed.podman.executed[-1] == ("podku-web-r1", ["/bin/sh"])
    code, _out, _err = fakes.cli_run(capsys, "enter", "web", "web", "2", "--", "id", "-u")
    assert deployed.podman.executed[-1] == ("podku-web-r1-web-2", ["id", "-u"])


@pytest.mark.parametrize(("words", "reason"), [
    (["worker"], "no process type 'worker'"), (["web", "3"], "is not running"), (["web", "0"], "invalid instance"),
    (["web", "x"], "invalid instance"), (["Web"], "process type"),
])
def test_enter_refuses_what_does_not_run(deployed, capsys, words, reason):
    deployed.podman.live[("web", 1)] = ["podku-web-r1"]
    code, _out, err = fakes.cli_run(capsys, "enter", "web", *words)
    assert code != 0 and reason in err and err.count("\n") == 1
    assert deployed.podman.executed == []


def test_enter_into_an_app_never_deployed_is_one_line(host, capsys):
    fakes.new_app("web")
    code, _out, err = fakes.cli_run(capsys, "enter", "web")
    assert code == 1 and "not been deployed" in err


def test_ps_inspect_shows_the_live_containers_without_config_values(deployed, capsys):
    code, _out, err = fakes.cli_run(capsys, "config:set", "web", "SECRET_KEY=hunter2-very-secret", "DEBUG=1")
    assert code == 0, err
    live = apps.load("web").live_release
    deployed.podman.live[("web", live)] = [f"podku-web-r{live}"]
    deployed.podman.inspected[f"podku-web-r{live}"] = {
        "Name": f"podku-web-r{live}",
        "Config": {"Env": ["SECRET_KEY=hunter2-very-secret", "DEBUG=1", "PATH=/usr/bin"],
                   "Cmd": ["app", "--key", "hunter2-very-secret"]}}
    code, out, err = fakes.cli_run(capsys, "ps:inspect", "web")
    assert code == 0, err
    shown = json.loads(out)
    assert shown[0]["Config"]["Env"] == ["SECRET_KEY=[redacted]", "DEBUG=[redacted]", "PATH=/usr/bin"]
    assert shown[0]["Config"]["Cmd"] == ["app", "--key", "[redacted]"]
    assert "hunter2" not in out


def test_an_archive_that_stops_arriving_is_refused_at_the_time_limit(tmp_path):
    read_end, write_end = os.pipe()
    os.write(write_end, archive()[:3000])  # then nothing more, the sender still connected
    with open(read_end, "rb") as stream, pytest.raises(prebuilt.ImageRefused, match="did not arrive within 1 s"):
        with prebuilt.time_limit(1):
            prebuilt.receive_archive(stream, tmp_path / "out" / "image.tar", "web", 10 ** 6)
    os.close(write_end)
    assert not (tmp_path / "out" / "image.tar").exists()


def test_an_extended_header_too_large_to_hold_is_refused_before_it_is_read(tmp_path):
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("layer1/x")
        info.pax_headers = {"comment": "y" * 200_000}
        tar.addfile(info)
    bomb = gzip.compress(out.getvalue() + archive())
    with pytest.raises(prebuilt.ImageRefused, match="not an image archive.*extended header"):
        received(tmp_path, bomb)
