import stat
import subprocess
import sys
from pathlib import Path

import pytest

from podku import sshkeys
from podku.errors import UsageError
from podku.host import paths


def make_key(directory: Path, name: str = "k", comment: str = "me@laptop") -> str:
    path = directory / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
                   check=True, capture_output=True)
    return (directory / f"{name}.pub").read_text()


@pytest.fixture
def key(tmp_path) -> str:
    return make_key(tmp_path)


@pytest.fixture
def other_key(tmp_path) -> str:
    return make_key(tmp_path, "other")


def test_parse_public_key_returns_type_and_blob(key):
    key_type, blob = sshkeys.parse_public_key(key)
    assert key_type == "ssh-ed25519"
    assert key.split()[:2] == [key_type, blob]


def test_parse_public_key_accepts_surrounding_blank_lines(key):
    assert sshkeys.parse_public_key("\n\n" + key + "\n\n")[0] == "ssh-ed25519"


@pytest.mark.parametrize("text", ["", "   \n", "hello", "ssh-ed25519", "not-a-type AAAAC3Nz",
                                  "rsa AAAAB3NzaC1yc2E"])
def test_parse_public_key_refuses_non_keys(text):
    with pytest.raises(UsageError):
        sshkeys.parse_public_key(text)


def test_parse_public_key_refuses_a_truncated_blob(key):
    key_type, blob = key.split()[:2]
    with pytest.raises(UsageError, match="ssh-keygen cannot read it"):
        sshkeys.parse_public_key(f"{key_type} {blob[:24]} me")  # truncated


def test_parse_public_key_refuses_a_private_key(tmp_path, key):
    with pytest.raises(UsageError):
        sshkeys.parse_public_key((tmp_path / "k").read_text())


def test_parse_public_key_refuses_two_lines(key, other_key):
    with pytest.raises(UsageError, match="exactly one public key line"):
        sshkeys.parse_public_key(key + other_key)


@pytest.mark.parametrize("name", ["laptop", "me@laptop", "ci.deploy_1", "A", "a" * 64])
def test_valid_key_names(name):
    assert sshkeys.key_name(name) == name


@pytest.mark.parametrize("name", ["", "-x", ".x", "a b", "a,b", 'a"b', "a/b", "a" * 65, "a\tb"])
def test_invalid_key_names_are_refused(name):
    with pytest.raises(UsageError, match="invalid key name"):
        sshkeys.key_name(name)


def test_no_authorized_keys_file_means_no_names(home):
    assert sshkeys.names() == []


def test_add_writes_a_restricted_forced_command_line(home, key):
    assert sshkeys.add("laptop", key) is True
    text = paths.SSH_AUTHORIZED_KEYS.read_text()
    assert home / ".ssh" / "authorized_keys" == paths.SSH_AUTHORIZED_KEYS
    [line] = text.splitlines()
    podku = Path(sys.executable).parent / "podku"
    assert line.startswith(f'command="{podku} ssh-command --key laptop",restrict,pty ssh-ed25519 ')
    assert line.endswith(" podku-key:laptop")
    assert key.split()[1] in line.split()
    assert "me@laptop" not in line  # the key's own comment is dropped


def test_authorized_keys_is_private(home, key):
    sshkeys.add("laptop", key)
    assert stat.S_IMODE(paths.SSH_AUTHORIZED_KEYS.stat().st_mode) == 0o600
    assert stat.S_IMODE(paths.SSH_AUTHORIZED_KEYS.parent.stat().st_mode) == 0o700


def test_add_list_remove_round_trip(home, key, other_key):
    sshkeys.add("laptop", key)
    sshkeys.add("ci", other_key)
    assert sshkeys.names() == ["laptop", "ci"]
    sshkeys.remove("laptop")
    assert sshkeys.names() == ["ci"]
    assert key.split()[1] not in paths.SSH_AUTHORIZED_KEYS.read_text()
    sshkeys.remove("ci")
    assert sshkeys.names() == []


def test_lines_not_written_by_podku_are_kept(home, key):
    paths.SSH_AUTHORIZED_KEYS.parent.mkdir()
    paths.SSH_AUTHORIZED_KEYS.write_text("# admin's own key\nssh-ed25519 AAAAadmin admin@host\n")
    sshkeys.add("laptop", key)
    sshkeys.remove("laptop")
    assert paths.SSH_AUTHORIZED_KEYS.read_text() == "# admin's own key\nssh-ed25519 AAAAadmin admin@host\n"
    assert sshkeys.names() == []


def test_adding_the_same_key_twice_is_refused(home, key):
    sshkeys.add("laptop", key)
    with pytest.raises(UsageError, match="already authorised"):
        sshkeys.add("laptop-again", key)
    assert sshkeys.names() == ["laptop"]


def test_adding_the_same_key_twice_with_if_new_returns_false(home, key):
    sshkeys.add("laptop", key)
    assert sshkeys.add("laptop", key, if_new=True) is False
    assert len(paths.SSH_AUTHORIZED_KEYS.read_text().splitlines()) == 1


def test_a_second_key_under_a_taken_name_is_refused(home, key, other_key):
    sshkeys.add("laptop", key)
    with pytest.raises(UsageError, match="a key named laptop already exists"):
        sshkeys.add("laptop", other_key, if_new=True)


def test_add_validates_the_name_before_writing(home, key):
    with pytest.raises(UsageError, match="invalid key name"):
        sshkeys.add("bad name", key)
    assert not paths.SSH_AUTHORIZED_KEYS.exists()


def test_add_refuses_garbage_without_writing(home):
    with pytest.raises(UsageError):
        sshkeys.add("laptop", "garbage")
    assert not paths.SSH_AUTHORIZED_KEYS.exists()


def test_removing_an_unknown_key_is_refused(home, key):
    sshkeys.add("laptop", key)
    with pytest.raises(UsageError, match="no key named desktop"):
        sshkeys.remove("desktop")


def test_remove_validates_the_name(home, key):
    sshkeys.add("laptop", key)
    with pytest.raises(UsageError, match="invalid key name"):
        sshkeys.remove("bad name")


def test_parse_public_key_refuses_a_type_that_does_not_match_the_blob(key):
    blob = key.split()[1]
    with pytest.raises(UsageError, match="ssh-keygen cannot read it"):
        sshkeys.parse_public_key(f"ssh-rsa {blob}")


def test_key_names_with_a_trailing_newline_are_refused():
    with pytest.raises(UsageError):
        sshkeys.key_name("laptop\n")
