"""The Procfile parser: strict, one-line errors naming the line, exec-form argv only."""

import pytest

from podku.image import procfile
from podku.image.procfile import ProcfileInvalid


def test_types_commands_comments_and_blank_lines():
    text = "# comment\n\nweb: gunicorn --fd 3 app:app\r\nworker:python3 w.py 'a b' \"$HOME\"\n  release : ./migrate\n"
    assert procfile.parse(text) == {"web": ["gunicorn", "--fd", "3", "app:app"],
                                    "worker": ["python3", "w.py", "a b", "$HOME"],
                                    "release": ["./migrate"]}


def test_a_shell_is_only_there_when_written():
    assert procfile.parse("web: sh -c 'echo $PORT; exec app'") == {"web": ["sh", "-c", "echo $PORT; exec app"]}
    assert procfile.parse("web: a; b && c | d") == {"web": ["a;", "b", "&&", "c", "|", "d"]}


@pytest.mark.parametrize("text, message", [
    ("web gunicorn", "line 1: expected `name: command`"),
    ("\n\nWeb: x", "line 3: invalid process type name 'Web'"),
    ("../x: y", "line 1: invalid process type name '../x'"),
    ("a" * 31 + ": x", "invalid process type name"),
    ("web:", "line 1: process type 'web' has no command"),
    ("web: 'unclosed", "line 1: cannot split the command"),
    ("web: a\nweb: b", "line 2: process type 'web' is defined twice"),
    ("web: a\x1b[2J", "line 1: control characters are not allowed"),
    ("web: " + "x" * 5000, "line 1: longer than 4096 characters"),
    ("".join(f"t{n}: x\n" for n in range(21)), "line 21: more than 20 process types"),
    ("x: y\n" * 20000, "larger than 64 KiB"),
    ("$(id): x", "invalid process type name"),
    ("-x: y", "invalid process type name"),
])
def test_malformed_input_is_one_line_naming_the_line(text, message):
    with pytest.raises(ProcfileInvalid, match=None) as caught:
        procfile.parse(text)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_exec_args_are_quoted_for_systemd():
    quoted = procfile.exec_args(["python3", "a b", "$HOME", "100%", 'say "hi"', "back\\slash", ";"])
    assert quoted == ' "python3" "a b" "$$HOME" "100%%" "say \\"hi\\"" "back\\\\slash" ";"'


@pytest.mark.parametrize("command", [None, 3, ["a"], "", "a\nb", "a\x00", "'open", "x" * 5000])
def test_a_command_string_must_be_a_sane_string(command):
    with pytest.raises(procfile.UsageError):
        procfile.split_command(command, "cron command")
