import pytest

from podku.errors import PodkuError
from podku.host import commands as run_module
from podku.host.commands import CommandFailed, child_env, reading, run, stream


def test_child_env_inherits_only_the_listed_variables(monkeypatch):
    monkeypatch.setenv("HOME", "/home/x")
    monkeypatch.setenv("SECRET_TOKEN", "s3cret")
    env = child_env()
    assert env["HOME"] == "/home/x"
    assert "SECRET_TOKEN" not in env


def test_child_env_always_has_a_path(monkeypatch):
    monkeypatch.delenv("PATH", raising=False)
    assert child_env()["PATH"] == "/usr/local/bin:/usr/bin:/bin"


def test_child_env_extra_values_win(monkeypatch):
    monkeypatch.setenv("HOME", "/home/x")
    assert child_env({"HOME": "/other", "A": "1"})["HOME"] == "/other"
    assert child_env({"A": "1"})["A"] == "1"


def test_run_captures_stdout_and_stderr_together():
    result = run(["sh", "-c", "echo out; echo err >&2"])
    assert result.returncode == 0
    assert sorted(result.stdout.splitlines()) == ["err", "out"]


def test_run_passes_input():
    assert run(["cat"], input="hello\n").stdout == "hello\n"


def test_run_arguments_are_never_shell_expanded(tmp_path):
    assert run(["echo", "$(id)", "*", ";ls"], cwd=tmp_path).stdout == "$(id) * ;ls\n"


def test_a_failing_command_raises_with_its_last_line():
    with pytest.raises(CommandFailed) as error:
        run(["sh", "-c", "echo first; echo 'the reason'; exit 3"])
    assert isinstance(error.value, PodkuError)
    assert error.value.returncode == 3
    assert str(error.value) == ("sh -c 'echo first; echo '\"'\"'the reason'\"'\"'; exit 3' failed with exit code 3:"
                                " the reason")


def test_a_failing_command_without_check_returns_its_code():
    assert run(["sh", "-c", "exit 4"], check=False).returncode == 4


def test_stream_passes_each_line_and_keeps_the_last():
    seen = []
    last = stream(["sh", "-c", "for i in 1 2 3 4 5; do echo line$i; done"], seen.append, keep=2)
    assert seen == ["line1", "line2", "line3", "line4", "line5"]
    assert last == ["line4", "line5"]


def test_stream_failure_carries_the_last_lines():
    with pytest.raises(CommandFailed) as error:
        stream(["sh", "-c", "echo building; echo broken; exit 1"], lambda line: None)
    assert error.value.output == "building\nbroken"
    assert str(error.value).endswith("failed with exit code 1: broken")


def test_the_module_exposes_the_inherited_names():
    assert "XDG_RUNTIME_DIR" in run_module.INHERITED_ENV
    assert "SSH_ORIGINAL_COMMAND" not in run_module.INHERITED_ENV


def test_stream_cuts_a_long_line_and_never_holds_it(monkeypatch):
    seen: list[str] = []
    script = "head -c 100000 /dev/zero | tr '\\0' x; echo; echo after"
    stream(["sh", "-c", script], seen.append)
    assert seen[0] == "x" * run_module.MAX_LINE_BYTES + " [line cut]"
    assert seen[1:] == ["after"]


def test_stream_tells_the_child_pid():
    pids: list[int] = []
    stream(["true"], lambda line: None, started=pids.append)
    assert len(pids) == 1 and pids[0] > 0


def test_reading_streams_stdout_and_passes_stderr_lines_on_after_the_command_ends():
    warnings = []
    with reading(["sh", "-c", "echo warned >&2; head -c 300000 /dev/zero"], on_stderr=warnings.append) as out:
        assert out.read(10) == b"\0" * 10  # the rest is read and dropped: the command still ends well
    assert warnings == ["warned"]


def test_reading_raises_with_stderr_on_a_failure_and_kills_the_command_when_left_by_an_error():
    with pytest.raises(CommandFailed, match="exit code 2: broke"):
        with reading(["sh", "-c", "echo broke >&2; exit 2"]) as out:
            out.read()
    with pytest.raises(ValueError):
        with reading(["sh", "-c", "exec sleep 60"]):
            raise ValueError("the reader gave up")
