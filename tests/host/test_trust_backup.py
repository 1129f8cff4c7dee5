"""backup:export and backup:import against an installed host as hostile-input code (issue 14,
holes 3, 7, 8, 13): a 2 KiB sparse archive is refused before it writes a byte; an export
taken after an app made links, a fifo and a socket in its storage imports; the old host's
settings and keys are taken only with the flags, and printed; a backup written by root is
0600.

The shared host runs other tests' apps, and import refuses apps that already exist, so a
test takes from its export only its own app (its members and its storage directory's,
byte for byte) and destroys the app before importing it."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

from test_hostile import ssh_raw
from test_small_host import host_bytes, in_container

import testhost

GIB = 1024 ** 3


def refused_in_one_line(result: subprocess.CompletedProcess, reason: bytes) -> None:
    assert result.returncode != 0, result.stdout
    assert reason in result.stderr, result.stderr
    assert result.stderr.count(b"\n") == 1 and b"Traceback" not in result.stderr, result.stderr


def disk_used_kib(host: testhost.TestHost) -> int:
    """What the deploy user's home holds, but podman's images and containers (other tests' apps)."""
    listing = host.as_deploy_user("du -sk --exclude=containers ~ 2>/dev/null", check=False).stdout
    return int(listing.split()[0])


# --- hole 7 ---------------------------------------------------------------------------

def gnu_tar(directory: Path, *names: str) -> bytes:
    return subprocess.run(["tar", "--create", "--sparse", "--format=gnu", "--record-size=512", "--file", "-",
                           "--directory", str(directory), *names], check=True, capture_output=True).stdout


def sparse_archives(tmp_path: Path) -> tuple[bytes, bytes]:
    """Two backups by GNU tar, each holding a 1 GiB sparse file with no data: one as a
    member of its own, one inside the storage archive."""
    outer = tmp_path / "outer"
    (outer / "state").mkdir(parents=True)
    (outer / "MANIFEST").write_text('podku-backup v1\n{"apps": []}\n')
    (outer / "END").write_text("podku-backup end\n")
    with open(outer / "state" / "big", "wb") as big:
        big.truncate(GIB)
    nested = tmp_path / "nested"
    (nested / "files").mkdir(parents=True)
    with open(nested / "files" / "big", "wb") as big:
        big.truncate(GIB)
    (outer / "storage.tar").write_bytes(gnu_tar(nested, "./files", "./files/big"))
    return gnu_tar(outer, "MANIFEST", "state/big", "END"), gnu_tar(outer, "MANIFEST", "storage.tar", "END")


def test_a_2_kib_sparse_archive_is_refused_before_writing(host, tmp_path):
    for archive, member in zip(sparse_archives(tmp_path), (b"'state/big'", b"'./files/big'"), strict=True):
        assert len(archive) <= 8192  # a few headers: no data at all
        before = disk_used_kib(host)
        refused = host_bytes(host, ["podku", "backup:import"], stdin=archive)
        refused_in_one_line(refused, member + b" is a sparse file")
        assert disk_used_kib(host) - before < 64, "the sparse file was written"
        assert host.as_deploy_user("ls ~/.local/share/podku | grep -c '^import-' || true").stdout.strip() == "0"


# --- hole 8 ---------------------------------------------------------------------------

MAKE_ODD_FILES = ("echo precious > /files/kept; ln /files/kept /files/second; ln -s /etc/passwd /files/link;"
                  " mkfifo /files/fifo;"
                  " python3 -c \"import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])\" /files/sock")


def test_an_export_after_the_app_made_links_a_fifo_and_a_socket_in_its_storage_imports(host, app_repo):
    app, files = app_repo.app, f"{app_repo.app}-files"
    app_repo.deploy("linked")
    host.ssh("storage:ensure-directory", files)
    host.ssh("storage:mount", app, f"{files}:/files")
    in_container(host, app, MAKE_ODD_FILES)
    exported = host_bytes(host, ["podku", "backup:export"])
    assert exported.returncode == 0, exported.stderr
    for name, why in (("link", "a symbolic link"), ("fifo", "a fifo"), ("sock", "a socket")):
        assert f"left out of the backup: storage '{files}/{name}', {why}".encode() in exported.stderr
    archive = testhost.only_app(exported.stdout, app, files)

    host.podku("apps:destroy", app, "--force")
    host.as_deploy_user(f"podman unshare rm -rf ~/.local/share/podku/storage/{files}")
    imported = host_bytes(host, ["podku", "backup:import"], stdin=archive)
    assert imported.returncode == 0, imported.stderr
    assert in_container(host, app, "ls /files; cat /files/kept /files/second") == "kept\nsecond\nprecious\nprecious\n"


# --- hole 3 ---------------------------------------------------------------------------

def archive_of_settings_and_a_key(public_key: str) -> bytes:
    """A backup of no apps, with raised build limits and a key this host does not have."""
    key_type, blob = public_key.split()[:2]
    key_line = f'command="podku ssh-command",restrict {key_type} {blob} podku-key:old-laptop\n'
    members = {
        "MANIFEST": b'podku-backup v1\n{"apps": []}\n',
        "config/limits.json": b'{"build_timeout": 20000, "push_max_bytes": 60000000000}',
        "ssh/authorized_keys": key_line.encode(),
        "END": b"podku-backup end\n",
    }
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


def watched(host: testhost.TestHost) -> str:
    return host.as_deploy_user("cat ~/.config/podku/limits.json 2>/dev/null; cat ~/.ssh/authorized_keys").stdout


def test_host_settings_and_keys_are_taken_only_with_the_flags_and_printed(host, tmp_path):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "old")], check=True)
    public_key = (tmp_path / "old.pub").read_text()
    fingerprint = subprocess.run(["ssh-keygen", "-l", "-f", str(tmp_path / "old.pub")], check=True,
                                 capture_output=True, text=True).stdout.split()[1]
    archive = archive_of_settings_and_a_key(public_key)
    before = watched(host)

    plain = host_bytes(host, ["podku", "backup:import"], stdin=archive)
    assert plain.returncode == 0, plain.stderr
    assert b"Skipped the backup's host settings (limits.json): --with-host-settings takes them" in plain.stdout
    assert b"Skipped the backup's 1 key(s) (old-laptop): --with-keys authorises them" in plain.stdout
    assert watched(host) == before

    over_ssh = ssh_raw(host, "backup:import --with-host-settings", input=archive)
    refused_in_one_line(over_ssh, b"--with-host-settings is for the host's operator")
    assert watched(host) == before

    saved = host.as_deploy_user("cat ~/.config/podku/limits.json 2>/dev/null || true").stdout
    try:
        taken = host_bytes(host, ["podku", "backup:import", "--with-host-settings", "--with-keys"], stdin=archive)
        assert taken.returncode == 0, taken.stderr
        assert b'limits.json: ' in taken.stdout and b'"build_timeout": 20000' in taken.stdout
        assert f"Added key old-laptop ({fingerprint})".encode() in taken.stdout
        assert "old-laptop" in host.podku("ssh-keys:list").stdout
    finally:
        host.podku("ssh-keys:remove", "old-laptop", check=False)
        restore = f"printf %s '{saved}' > ~/.config/podku/limits.json" if saved else "rm -f ~/.config/podku/limits.json"
        host.as_deploy_user(restore)
    assert watched(host) == before


# --- hole 13 --------------------------------------------------------------------------

def test_a_backup_written_by_root_or_the_deploy_user_is_0600(host):
    by_root = host.sh("umask 022; podku backup:export > /root/backup.tar && stat -c %a /root/backup.tar;"
                      " rm -f /root/backup.tar")
    assert by_root.stdout.strip() == "600", by_root.stderr
    by_user = host.as_deploy_user("umask 022; podku backup:export > ~/backup.tar && stat -c %a ~/backup.tar;"
                                  " rm -f ~/backup.tar")
    assert by_user.stdout.strip() == "600", by_user.stderr
    # a file only root could narrow, given to the deploy user: refused before a byte is written
    host.sh("mkdir -p -m 0755 /srv/backups && install -m 0666 /dev/null /srv/backups/shared.tar")
    refused = host.as_deploy_user("podku backup:export >> /srv/backups/shared.tar", check=False)
    assert refused.returncode != 0 and "cannot make it 0600" in refused.stderr, refused.stderr
    assert refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr
    assert host.sh("stat -c '%a %s' /srv/backups/shared.tar").stdout.strip() == "666 0"
