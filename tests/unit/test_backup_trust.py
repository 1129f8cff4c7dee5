"""backup:import as hostile-input code (issue 14, holes 3, 7, 8, 13): archives crafted to
write without bound (sparse members, sizes claimed by headers, too many members, in the
nested storage archive too), repositories that borrow or carry bad objects, the old host's
settings and keys taken only when asked for; export leaving out what import would refuse;
a backup never written to a file others may read."""

import io
import os
import socket
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest
import test_backup
from test_backup import add_file, crafted, crafted_with_extra, deployed_app, export_bytes, git, wipe

from podku import apps, backup, sshkeys
from podku.host import paths
from podku.image import limits
from podku.runtime import storage

host = test_backup.host  # the fake host of test_backup, its storage read by tarfile

GIB = 1024 ** 3


def no_staging_left() -> bool:
    return not list(paths.DATA.glob("import-*"))


def gnu_tar(directory: Path, *names: str) -> bytes:
    """What GNU tar makes of `names` under `directory`: sparse files as GNU sparse members."""
    return subprocess.run(["tar", "--create", "--sparse", "--format=gnu", "--record-size=512", "--file", "-",
                           "--directory", str(directory), *names], check=True, capture_output=True).stdout


def sparse_file(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        handle.truncate(size)


def raw_header(name: str, size: int) -> bytes:
    """A member header claiming `size` bytes, none of which follow."""
    info = tarfile.TarInfo(name)
    info.size = size
    return info.tobuf(format=tarfile.GNU_FORMAT)


def write_podku_files(directory: Path) -> None:
    (directory / "MANIFEST").write_text('podku-backup v1\n{"apps": []}\n')
    (directory / "END").write_text("podku-backup end\n")


# --- hole 7: nothing written without bound ---------------------------------------------

def test_a_2_kib_archive_with_a_sparse_member_is_refused_before_writing(home, tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    write_podku_files(source)
    sparse_file(source / "state" / "big", 4 * GIB)
    data = gnu_tar(source, "MANIFEST", "state/big", "END")
    assert len(data) <= 4096
    with pytest.raises(backup.BackupError, match="'state/big' is a sparse file"):
        backup.restore(io.BytesIO(data))
    assert no_staging_left()


def test_a_sparse_member_of_the_nested_storage_archive_is_refused_before_writing(home, tmp_path, monkeypatch):
    written = []
    monkeypatch.setattr(backup, "write_member", lambda root, member, *rest, **kw: written.append(member.name))
    source = tmp_path / "storage"
    (source / "files").mkdir(parents=True)
    sparse_file(source / "files" / "big", 4 * GIB)
    nested = gnu_tar(source, "./files", "./files/big")
    with pytest.raises(backup.BackupError, match="'./files/big' is a sparse file"):
        backup.restore(crafted(("storage.tar", nested)))
    assert written == ["files"] and no_staging_left()


def test_pax_sparse_members_are_refused_too(home):
    nested = io.BytesIO()
    with tarfile.open(fileobj=nested, mode="w", format=tarfile.PAX_FORMAT) as archive:
        info = tarfile.TarInfo("files/big")
        info.pax_headers = {"GNU.sparse.map": "0,0", "GNU.sparse.size": str(GIB), "GNU.sparse.name": "files/big"}
        archive.addfile(info)
    with pytest.raises(backup.BackupError, match="is a sparse file"):
        backup.restore(crafted(("storage.tar", nested.getvalue())))


@pytest.mark.parametrize("kind", ["symlink:/etc", "hardlink:files/a", "fifo", "device"])
def test_links_fifos_and_devices_in_the_nested_storage_archive_are_refused(home, kind):
    nested = io.BytesIO()
    with tarfile.open(fileobj=nested, mode="w") as archive:
        add_file(archive, "files/a", b"a")
        info = tarfile.TarInfo("files/b")
        kind_name, _, info.linkname = kind.partition(":")
        info.type = {"symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE, "fifo": tarfile.FIFOTYPE,
                     "device": tarfile.CHRTYPE}[kind_name]
        archive.addfile(info)
    with pytest.raises(backup.BackupError, match="storage member 'files/b' is a"):
        backup.restore(crafted(("storage.tar", nested.getvalue())))
    assert not storage.root().exists() and no_staging_left()


def test_a_size_claimed_by_a_header_is_refused_before_any_data_is_read(home):
    claimed = raw_header("state/web/big", 9 * GIB)  # and the stream ends: no data at all
    manifest = crafted().getvalue()[:1024]  # MANIFEST's header and data
    with pytest.raises(backup.BackupError, match="'state/web/big' makes the backup larger than the limit"):
        backup.restore(io.BytesIO(manifest + claimed))
    with pytest.raises(backup.BackupError, match="'files/big' makes the backup larger than the limit"):
        backup.restore(crafted(("storage.tar", raw_header("files/big", 9 * GIB))))
    assert no_staging_left()


def test_nested_members_count_against_the_same_total_and_member_count(home, monkeypatch):
    nested = io.BytesIO()
    with tarfile.open(fileobj=nested, mode="w") as archive:
        add_file(archive, "files/a", b"x" * 600)
    monkeypatch.setattr(backup, "MAX_TOTAL_BYTES", 1000)
    with pytest.raises(backup.BackupError, match="'files/a' makes the backup larger"):
        backup.restore(crafted(("state/x", b"y" * 600), ("storage.tar", nested.getvalue())))
    monkeypatch.setattr(backup, "MAX_TOTAL_BYTES", 10 ** 6)
    monkeypatch.setattr(backup, "MAX_MEMBERS", 1)  # state/x is the one; files/a is one more
    with pytest.raises(backup.BackupError, match="more than 1 members"):
        backup.restore(crafted(("state/x", b"y"), ("storage.tar", nested.getvalue())))
    assert no_staging_left()


def test_too_many_members_are_refused(home, monkeypatch):
    monkeypatch.setattr(backup, "MAX_MEMBERS", 3)
    with pytest.raises(backup.BackupError, match="more than 3 members"):
        backup.restore(crafted(*[(f"state/f{n}", b"x") for n in range(4)]))


def test_an_extended_header_too_large_for_memory_is_refused_unread(home):
    long_name = tarfile.TarInfo("././@LongLink")
    long_name.type, long_name.size = tarfile.GNUTYPE_LONGNAME, 100 * GIB
    with pytest.raises(backup.BackupError, match="a header of"):
        backup.restore(io.BytesIO(crafted().getvalue()[:1024] + long_name.tobuf(format=tarfile.GNU_FORMAT)))


# --- repositories ----------------------------------------------------------------------

@pytest.mark.parametrize("name", ["alternates", "http-alternates"])
def test_a_repository_that_borrows_objects_is_refused(host, name):
    deployed_app()
    data = export_bytes()
    wipe()
    with pytest.raises(backup.BackupError, match="borrow objects"):
        backup.restore(crafted_with_extra(data, f"repos/web.git/objects/info/{name}", b"/home/other/objects\n"))
    assert apps.all_names() == [] and no_staging_left()


def commit_with_zero_padded_mode(repo: Path) -> None:
    """A commit whose tree a push with receive.fsckObjects refuses (a zero-padded file mode)."""
    blob = git("--git-dir", str(repo), "hash-object", "-w", "--stdin", input_=b"hi\n")
    tree_data = b"0100644 a\0" + bytes.fromhex(blob)
    tree = git("--git-dir", str(repo), "hash-object", "-t", "tree", "-w", "--literally", "--stdin", input_=tree_data)
    commit = git("--git-dir", str(repo), "commit-tree", tree, "-m", "x")
    git("--git-dir", str(repo), "update-ref", "refs/heads/main", commit)


def test_a_repository_with_bad_objects_is_refused(host):
    deployed_app()
    commit_with_zero_padded_mode(paths.AppPaths("web").repo)
    data = export_bytes()
    wipe()
    with pytest.raises(backup.BackupError, match="git fsck says .*zeroPaddedFilemode"):
        backup.restore(io.BytesIO(data))
    assert apps.all_names() == [] and not paths.AppPaths("web").repo.exists() and no_staging_left()


def test_a_corrupt_object_is_refused(host):
    deployed_app()
    data = export_bytes()
    wipe()
    with pytest.raises(backup.BackupError, match="git fsck says"):
        backup.restore(crafted_with_extra(data, "repos/web.git/objects/ab/" + "c" * 38, b"not zlib"))


# --- hole 8: what export writes imports -----------------------------------------------

def test_export_leaves_out_links_fifos_and_odd_names_and_the_backup_imports(host, capsys):
    deployed_app()
    files = storage.directory("files")
    (files / "photo (1) é.jpg").write_text("kept")
    (files / "link").symlink_to("/etc/passwd")
    os.link(files / "kept.txt", files / "second-link")
    os.mkfifo(files / "fifo")
    (files / "esc\x1b[2J").write_text("x")
    (storage.root() / "stray.txt").write_text("not a storage directory")
    data = export_bytes()
    err = capsys.readouterr().err
    for name, why in [("files/link", "a symbolic link"), ("files/fifo", "a fifo"),
                      ("stray.txt", "not in a storage directory"), ("files/second-link", "a hard link"),
                      ("files/esc\\\\x1b[2J", "a name that is not printable")]:
        assert f"left out of the backup: storage '{name}', {why}" in err, err
    assert "\x1b" not in err
    wipe()
    backup.restore(io.BytesIO(data))
    assert sorted(p.name for p in files.iterdir()) == ["kept.txt", "photo (1) é.jpg"]


def test_sockets_gnu_tar_leaves_out_are_named_like_the_others(capsys):
    backup._tar_warning("tar: ./files/app.sock: socket ignored")
    backup._tar_warning("tar: ./files/x: file changed as we read it")
    assert capsys.readouterr().err.splitlines() == [
        " !     left out of the backup: storage 'files/app.sock', a socket",
        " !     tar: ./files/x: file changed as we read it"]


def test_export_refuses_what_import_would_refuse_for_its_size(host, monkeypatch):
    deployed_app()
    monkeypatch.setattr(backup, "MAX_MEMBER_BYTES", 3)
    with pytest.raises(backup.BackupError, match="'./files/kept.txt' makes the backup larger"):
        export_bytes()


# --- hole 3: the old host's settings and keys only when asked for ---------------------------

def a_key(tmp_path: Path, name: str) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / name)], check=True)
    return (tmp_path / f"{name}.pub").read_text()


@pytest.fixture
def old_host(host, tmp_path) -> tuple[bytes, str]:
    """A backup of a host with raised limits and a key (returned with the key's fingerprint);
    this host then has neither."""
    deployed_app()
    paths.CONFIG.mkdir(parents=True, exist_ok=True)
    (paths.CONFIG / "limits.json").write_text('{"build_timeout": 20000}')
    (paths.CONFIG / "builders.json").write_text('{"pip-index-url": "http://pypi.example/simple"}')
    key = a_key(tmp_path, "laptop")
    sshkeys.add("laptop", key)
    data = export_bytes()
    wipe()
    for path in (paths.CONFIG / "limits.json", paths.CONFIG / "builders.json", paths.SSH_AUTHORIZED_KEYS):
        path.unlink()
    return data, sshkeys.fingerprint(key.split()[1])


def test_without_the_flags_host_settings_and_keys_are_skipped_with_a_line(old_host, capsys):
    data, _ = old_host
    backup.restore(io.BytesIO(data))
    out = capsys.readouterr().out
    assert "Skipped the backup's host settings (limits.json, builders.json): --with-host-settings takes them" in out
    assert "Skipped the backup's 1 key(s) (laptop): --with-keys authorises them" in out
    assert limits.load() == limits.BuildLimits() and sshkeys.names() == []
    assert not (paths.CONFIG / "builders.json").exists()


def test_with_the_flags_each_setting_and_key_taken_is_printed(old_host, capsys):
    data, fingerprint = old_host
    (paths.CONFIG / "builders.json").write_text('{"npm-registry": "http://npm.example/"}')
    backup.restore(io.BytesIO(data), backup.Taken(host_settings=True, keys=True))
    out = capsys.readouterr().out
    assert 'Host setting limits.json: took the backup\'s: {"build_timeout": 20000}' in out
    assert ("Host setting builders.json: replaced this host's with the backup's: "
            '{"pip-index-url": "http://pypi.example/simple"}') in out
    assert f"Added key laptop ({fingerprint})" in out
    assert limits.load().build_timeout == 20000 and sshkeys.names() == ["laptop"]


def test_with_keys_only_keys_are_taken(old_host, capsys):
    data, fingerprint = old_host
    backup.restore(io.BytesIO(data), backup.Taken(keys=True))
    assert f"Added key laptop ({fingerprint})" in capsys.readouterr().out
    assert limits.load() == limits.BuildLimits()


# --- hole 13: never to a file others may read -----------------------------------------

def test_export_makes_its_file_0600(host, tmp_path):
    target = tmp_path / "backup.tar"
    target.touch(mode=0o644)
    os.chmod(target, 0o644)
    with open(target, "wb") as out:
        backup.export(out)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_export_refuses_a_file_it_cannot_make_0600_before_writing(host, tmp_path, monkeypatch):
    target = tmp_path / "backup.tar"
    target.touch()
    os.chmod(target, 0o644)

    def not_the_owner(fd, mode):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(backup.os, "fchmod", not_the_owner)
    with open(target, "wb") as out, pytest.raises(backup.BackupError, match="mode 0644 and podku cannot make it 0600"):
        backup.export(out)
    assert target.stat().st_size == 0


def test_export_to_a_pipe_or_socket_is_left_alone(host):
    left, right = socket.socketpair()
    with left, right, left.makefile("wb") as out:
        backup.make_private(out)  # not a regular file: nothing to make private, nothing refused


@pytest.mark.parametrize("members", [
    [("state/a", b"x"), ("state/a", b"y")],
    [("state/a", b"x"), ("state/a/b", b"y")],
    [("state/a", b"x"), ("state/a", None)],
    [("storage.tar", b"\0" * 1024), ("storage.tar", b"\0" * 1024)],  # two empty archives
])
def test_a_name_given_twice_is_one_refusal(home, members):
    with pytest.raises(backup.BackupError, match="cannot import 'state/a|two storage archives"):
        backup.restore(crafted(*members))
    assert no_staging_left()
