import fcntl
import json
import os
import stat
import subprocess
import sys
import threading
import time

import pytest

from podku.host import state


def test_write_atomic_writes_the_text_and_creates_parents(tmp_path):
    path = tmp_path / "a" / "b" / "file.txt"
    state.write_atomic(path, "hello\n")
    assert path.read_text() == "hello\n"


def test_write_atomic_leaves_no_temp_files(tmp_path):
    path = tmp_path / "file.txt"
    state.write_atomic(path, "one")
    state.write_atomic(path, "two")
    assert path.read_text() == "two"
    assert [p.name for p in tmp_path.iterdir()] == ["file.txt"]


@pytest.mark.parametrize("mode", [0o600, 0o644, 0o755])
def test_write_atomic_sets_the_mode(tmp_path, mode):
    path = tmp_path / "file"
    state.write_atomic(path, "x", mode=mode)
    assert stat.S_IMODE(path.stat().st_mode) == mode


def test_write_atomic_default_mode_is_0644(tmp_path):
    path = tmp_path / "file"
    state.write_atomic(path, "x")
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_write_atomic_replaces_the_file_rather_than_rewriting_it(tmp_path):
    path = tmp_path / "file"
    state.write_atomic(path, "old")
    reader = open(path)
    try:
        state.write_atomic(path, "new")
        assert reader.read() == "old"  # an open reader keeps the complete old content
    finally:
        reader.close()
    assert path.read_text() == "new"


def test_write_atomic_cleans_up_when_writing_fails(tmp_path):
    path = tmp_path / "file"
    state.write_atomic(path, "old")
    with pytest.raises(TypeError):
        state.write_atomic(path, b"not text")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["file"]


def test_symlink_atomic_creates_a_link(tmp_path):
    link = tmp_path / "dir" / "app.sock"
    state.symlink_atomic(tmp_path / "r1.sock", link)
    assert os.readlink(link) == str(tmp_path / "r1.sock")


def test_symlink_atomic_replaces_an_existing_link(tmp_path):
    link = tmp_path / "app.sock"
    state.symlink_atomic("r1.sock", link)
    state.symlink_atomic("r2.sock", link)
    assert os.readlink(link) == "r2.sock"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.sock"]


def test_symlink_atomic_recovers_from_a_stale_temp_link(tmp_path):
    link = tmp_path / "app.sock"
    os.symlink("stale", tmp_path / ".app.sock.new")
    state.symlink_atomic("r3.sock", link)
    assert os.readlink(link) == "r3.sock"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.sock"]


def test_write_json_is_sorted_indented_and_readable(tmp_path):
    path = tmp_path / "data.json"
    state.write_json(path, {"b": 1, "a": [1, 2]})
    text = path.read_text()
    assert text.endswith("}\n")
    assert text.index('"a"') < text.index('"b"')
    assert state.read_json(path) == {"a": [1, 2], "b": 1}
    assert json.loads(text) == {"a": [1, 2], "b": 1}


def test_read_json_of_a_missing_file_gives_the_default(tmp_path):
    assert state.read_json(tmp_path / "missing.json") is None
    assert state.read_json(tmp_path / "missing.json", {}) == {}
    assert state.read_json(tmp_path / "missing.json", default=[1]) == [1]


def test_read_json_does_not_hide_corrupt_files(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    with pytest.raises(state.StateCorrupt, match="bad.json is corrupt"):
        state.read_json(path, {})


def test_locked_creates_the_lock_file_and_its_directory(tmp_path):
    lock = tmp_path / "apps" / "x" / "lock"
    with state.locked(lock, "x"):
        assert lock.exists()


def test_locked_is_released_on_error(tmp_path):
    lock = tmp_path / "lock"
    with pytest.raises(RuntimeError):
        with state.locked(lock, "x"):
            raise RuntimeError("boom")
    with open(lock) as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free again


def test_locked_excludes_another_process(tmp_path):
    lock = tmp_path / "lock"
    probe = ("import fcntl, sys\n"
             "handle = open(sys.argv[1], 'a')\n"
             "try:\n"
             "    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
             "except BlockingIOError:\n"
             "    sys.exit(3)\n")
    with state.locked(lock, "x"):
        held = subprocess.run([sys.executable, "-c", probe, str(lock)], timeout=30)
    free = subprocess.run([sys.executable, "-c", probe, str(lock)], timeout=30)
    assert held.returncode == 3
    assert free.returncode == 0


def test_a_second_locker_waits_and_says_so_on_stderr(tmp_path, capsys):
    """stderr: during a push, stdout may carry the git protocol."""
    lock = tmp_path / "lock"
    entered = threading.Event()

    def second():
        with state.locked(lock, "my-app"):
            entered.set()

    said = ""
    with state.locked(lock, "my-app"):
        thread = threading.Thread(target=second, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while "Waiting" not in said and time.monotonic() < deadline:
            time.sleep(0.02)
            captured = capsys.readouterr()
            said += captured.err
            assert captured.out == ""
        assert not entered.is_set()
    assert entered.wait(10), "the second locker never got the lock"
    thread.join(10)
    assert said == "-----> Waiting for another operation on my-app to finish\n"


def test_an_uncontended_lock_says_nothing(tmp_path, capsys):
    with state.locked(tmp_path / "lock", "x"):
        pass
    assert capsys.readouterr().out == ""
