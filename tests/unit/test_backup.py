"""backup:export and backup:import against the fakes, and the reader's refusals of crafted,
foreign and truncated archives: each is one error, and nothing is written."""

import contextlib
import io
import shutil
import subprocess
import tarfile

import pytest

import fakes
from podku import apps, backup, deploy, releases
from podku.errors import PodkuError
from podku.host import paths
from podku.image import prebuilt
from podku.runtime import storage


@pytest.fixture
def host(home, monkeypatch) -> fakes.FakeHost:
    monkeypatch.setattr(backup, "storage_stream", python_storage_stream)
    monkeypatch.setattr(backup.gitrepo, "prepare", lambda repo, name: repo.mkdir(parents=True, exist_ok=True))
    monkeypatch.setattr(backup.domains, "load_proxy", lambda: None)
    return fakes.install(monkeypatch)


@contextlib.contextmanager
def python_storage_stream():
    """What `podman unshare tar` makes, made by tarfile: links and fifos come as such."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as archive:
        archive.add(storage.root(), arcname=".")
    raw.seek(0)
    yield raw


def deployed_app(name: str = "web") -> None:
    fakes.new_app(name)
    apps.save_config(name, {"GREETING": "hi"})
    storage.ensure_directory("files")
    (storage.directory("files") / "kept.txt").write_text("data")
    storage.save_mounts(name, ["files:/srv"])
    git("init", "--quiet", "--bare", "--initial-branch=main", str(paths.AppPaths(name).repo))
    with apps.lock(name):
        deploy.deploy_revision(apps.load(name), "a" * 40)


def git(*args: str, input_: bytes | None = None) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], input=input_, check=True,
                          capture_output=True).stdout.decode().strip()


def export_bytes() -> bytes:
    out = io.BytesIO()
    backup.export(out)
    return out.getvalue()


def wipe() -> None:
    for path in (paths.APPS, paths.REPOS, storage.root()):
        shutil.rmtree(path, ignore_errors=True)


def test_export_then_import_on_an_empty_host_deploys_the_live_revision(host):
    deployed_app()
    data = export_bytes()
    wipe()
    backup.restore(io.BytesIO(data))
    app = apps.load("web")
    live = releases.load("web", app.live_release)
    assert (live.rev, live.config, live.mounts) == ("a" * 40, {"GREETING": "hi"}, ["files:/srv"])
    assert (storage.directory("files") / "kept.txt").read_text() == "data"
    assert releases.load("web", 1).outcome == releases.Outcome.RETIRED
    fakes.assert_consistent(host, "web")


def test_import_refuses_apps_that_exist_and_changes_nothing(host):
    deployed_app()
    data = export_bytes()
    with pytest.raises(backup.BackupError, match="already exist on this host: web"):
        backup.restore(io.BytesIO(data))
    assert [r.id for r in releases.all_of("web")] == [1]


def test_a_truncated_backup_is_refused_before_anything_is_placed(host):
    deployed_app()
    data = export_bytes()
    wipe()
    for cut in (len(data) // 2, data.rindex(b"END\0")):  # the END member's header starts there
        with pytest.raises(backup.BackupError, match="truncated"):
            backup.restore(io.BytesIO(data[:cut]))
        assert apps.all_names() == [] and not storage.root().exists()
    assert not list(paths.DATA.glob("import-*"))


def crafted(*members: tuple[str, bytes | str | None], manifest: str = 'podku-backup v1\n{"apps": []}\n',
            end: bool = True) -> io.BytesIO:
    """An archive with MANIFEST, the given members (bytes: a file; None: a directory;
    'symlink:T', 'hardlink:T', 'device'), and END."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as archive:
        if manifest is not None:
            add_file(archive, "MANIFEST", manifest.encode())
        for name, content in members:
            info = tarfile.TarInfo(name)
            if content is None:
                info.type = tarfile.DIRTYPE
                archive.addfile(info)
            elif isinstance(content, str):
                kind, _, target = content.partition(":")
                info.type = {"symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE,
                             "device": tarfile.CHRTYPE, "fifo": tarfile.FIFOTYPE}[kind]
                info.linkname = target
                archive.addfile(info)
            else:
                add_file(archive, name, content)
        if end:
            add_file(archive, "END", b"podku-backup end\n")
    out.seek(0)
    return out


def add_file(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    archive.addfile(info, io.BytesIO(data))


@pytest.mark.parametrize("members, message", [
    ([("../escape", b"x")], "unexpected member"),
    ([("state/../../escape", b"x")], "unexpected member"),
    ([("/etc/passwd", b"x")], "unexpected member"),
    ([("state/web/x\nb", b"x")], "unexpected member"),
    ([("other/file", b"x")], "unexpected member"),
    ([("state/link", "symlink:/home")], "is a symbolic link"),
    ([("state/hard", "hardlink:/etc/shadow")], "is a hard link"),
    ([("state/dev", "device")], "is a device"),
    ([("state/fifo", "fifo")], "is a fifo"),
])
def test_crafted_members_are_refused(home, members, message):
    with pytest.raises(backup.BackupError, match=message):
        backup.restore(crafted(*members))
    assert not (paths.HOME / "escape").exists() and apps.all_names() == []
    assert not list(paths.DATA.glob("import-*"))


def test_foreign_files_are_not_a_podku_backup(home):
    for data in (b"", b"hello world\n" * 100, crafted(manifest="something else\n").getvalue()):
        with pytest.raises(backup.BackupError, match="not a podku backup"):
            backup.restore(io.BytesIO(data))
    other = io.BytesIO()
    with tarfile.open(fileobj=other, mode="w") as archive:
        add_file(archive, "etc/passwd", b"root:x:0:0")
    with pytest.raises(backup.BackupError, match="not a podku backup"):
        backup.restore(io.BytesIO(other.getvalue()))


def test_an_unknown_version_and_a_missing_end_are_refused(home):
    with pytest.raises(backup.BackupError, match="unsupported backup version"):
        backup.restore(crafted(manifest='podku-backup v9\n{"apps": []}\n'))
    with pytest.raises(backup.BackupError, match="truncated"):
        backup.restore(crafted(("state/", None), end=False))


def test_a_huge_member_is_refused_before_it_is_written(home, monkeypatch):
    monkeypatch.setattr(backup, "MAX_MEMBER_BYTES", 1000)
    with pytest.raises(backup.BackupError, match="larger than the limit"):
        backup.restore(crafted(("state/web/big", b"x" * 2000)))
    assert not list(paths.DATA.glob("import-*"))


def test_nested_storage_with_links_or_dotdot_is_refused(home):
    for name, kind in (("../up", b"x"), ("./files/../../up", b"x"), ("files/link", "symlink:/etc")):
        nested = io.BytesIO()
        with tarfile.open(fileobj=nested, mode="w") as archive:
            if isinstance(kind, bytes):
                add_file(archive, name, kind)
            else:
                info = tarfile.TarInfo(name)
                info.type, info.linkname = tarfile.SYMTYPE, "/etc"
                archive.addfile(info)
        with pytest.raises(PodkuError):
            backup.restore(crafted(("storage.tar", nested.getvalue())))
        assert not storage.root().exists()


def test_a_repositorys_config_and_hooks_do_not_travel(host):
    deployed_app()
    repo = paths.AppPaths("web").repo
    (repo / "hooks").mkdir(exist_ok=True)
    (repo / "hooks" / "post-update").write_text("#!/bin/sh\ntouch /tmp/owned\n")
    (repo / "config").write_text("[core]\n\tfsmonitor = touch /tmp/owned\n")
    data = export_bytes()
    wipe()
    backup.restore(crafted_with_extra(data, "repos/web.git/hooks/pre-push", b"#!/bin/sh\n"))
    assert not (repo / "hooks" / "post-update").exists() and not (repo / "hooks" / "pre-push").exists()
    assert "fsmonitor" not in (repo / "config").read_text()


def crafted_with_extra(data: bytes, name: str, content: bytes) -> io.BytesIO:
    """The archive with one more member just before END."""
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as source, tarfile.open(fileobj=out, mode="w") as target:
        for member in source.getmembers():
            if member.name == "END":
                add_file(target, name, content)
            target.addfile(member, source.extractfile(member) if member.isreg() else None)
    out.seek(0)
    return out


def test_a_backup_cut_anywhere_is_refused_as_podku_error_never_as_a_crash(tmp_path):
    """The stream may end inside a member's data, not only between members."""
    import io
    import tarfile

    from podku import backup

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w|", format=tarfile.PAX_FORMAT) as archive:
        for name, data in [(backup.MANIFEST, b'podku-backup v1\n{"apps": []}'), ("config/x", b"y" * 300_000),
                           (backup.END, b"")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    whole = buffer.getvalue()
    end_marker = whole.index(backup.END.encode())  # a cut after it loses only the padding
    for cut in range(0, end_marker, 997):
        staging = tmp_path / f"cut{cut}"
        staging.mkdir()
        with pytest.raises(backup.BackupError):
            backup.unpack(io.BytesIO(whole[:cut]), staging)


def test_import_pulls_a_registry_image_again_and_leaves_a_loaded_one_undeployed(host, capsys):
    for name, words in (("pulled", ["git:from-image", "pulled", "registry.example/team/app:1"]),
                        ("loaded", None)):
        deployed_app(name)
        if words:
            assert fakes.cli_run(capsys, *words)[0] == 0
    image_id = "sha256:" + "e" * 64

    def loaded(tag: str, _release_id: int) -> prebuilt.Loaded:
        host.podman.tag_image(image_id, tag)
        return prebuilt.Loaded(image_id, f"load-image {image_id}")
    with apps.lock("loaded"):
        deploy.deploy_image(apps.load("loaded"), loaded, "Load image")
    data = export_bytes()
    wipe()
    host.podman.pulled.clear()
    with pytest.raises(PodkuError):
        backup.restore(io.BytesIO(data))
    assert [source for source, _prefix in host.podman.pulled] == ["registry.example/team/app:1"]
    assert fakes.assert_consistent(host, "pulled").source == "image registry.example/team/app:1"
    assert apps.load("loaded").live_release is None
    assert "send it again" in capsys.readouterr().err
