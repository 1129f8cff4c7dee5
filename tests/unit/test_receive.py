import pytest

from podku import receive
from podku.errors import UsageError

OLD = "1" * 40
NEW = "2" * 40
OTHER = "3" * 40
ZERO = "0" * 40


def test_a_push_to_main_deploys_its_new_revision():
    assert receive.pushed_revision([f"{OLD} {NEW} refs/heads/main"]) == NEW


def test_a_push_to_master_deploys_its_new_revision():
    assert receive.pushed_revision([f"{ZERO} {NEW} refs/heads/master"]) == NEW


def test_other_refs_are_ignored_with_a_warning(capsys):
    lines = [f"{OLD} {OTHER} refs/heads/dev", f"{OLD} {NEW} refs/heads/main",
             f"{ZERO} {OTHER} refs/tags/v1"]
    assert receive.pushed_revision(lines) == NEW
    err = capsys.readouterr().err
    assert "refs/heads/dev is not deployed" in err
    assert "refs/tags/v1 is not deployed" in err
    assert "refs/heads/main" not in err


def test_a_push_of_other_refs_only_deploys_nothing(capsys):
    assert receive.pushed_revision([f"{OLD} {NEW} refs/heads/feature"]) is None
    assert "push to main or master" in capsys.readouterr().err


@pytest.mark.parametrize("ref", ["refs/heads/dev", "refs/tags/main", "main", "refs/heads/main2",
                                 "refs/heads/feature/main", "refs/remotes/origin/main"])
def test_only_main_and_master_deploy_when_no_deploy_branch_is_set(ref):
    assert receive.pushed_revision([f"{OLD} {NEW} {ref}"]) is None


def test_deleting_main_deploys_nothing(capsys):
    assert receive.pushed_revision([f"{OLD} {ZERO} refs/heads/main"]) is None
    assert capsys.readouterr().err == ""


def test_malformed_and_empty_input_deploys_nothing():
    assert receive.pushed_revision([]) is None
    assert receive.pushed_revision(["", "garbage", f"{OLD} {NEW}", f"{OLD} {NEW} refs/heads/main extra"]) is None


@pytest.mark.parametrize("command, words", [
    ("git-receive-pack 'my-app.git'", ["git-receive-pack", "my-app.git"]),
    ("git-upload-pack '/my-app'", ["git-upload-pack", "/my-app"]),
    ('config:set app "GREETING=hello world" B=2', ["config:set", "app", "GREETING=hello world", "B=2"]),
    ("apps:list", ["apps:list"]),
    ("  urls   app  ", ["urls", "app"]),
    ("config:set app 'A=$(reboot)'", ["config:set", "app", "A=$(reboot)"]),
])
def test_ssh_words_split_like_a_shell(monkeypatch, command, words):
    monkeypatch.setenv("SSH_ORIGINAL_COMMAND", command)
    assert receive.ssh_words() == words


@pytest.mark.parametrize("command", ["config:set app 'A=1", 'apps:create "x', "urls a\\"])
def test_ssh_words_refuse_unbalanced_quotes(monkeypatch, command):
    monkeypatch.setenv("SSH_ORIGINAL_COMMAND", command)
    with pytest.raises(UsageError, match="cannot parse the command"):
        receive.ssh_words()


@pytest.mark.parametrize("command", ["", "   ", None])
def test_ssh_words_default_to_help(monkeypatch, command):
    if command is None:
        monkeypatch.delenv("SSH_ORIGINAL_COMMAND", raising=False)
    else:
        monkeypatch.setenv("SSH_ORIGINAL_COMMAND", command)
    assert receive.ssh_words() == ["help"]


def test_serve_git_needs_exactly_one_repository():
    with pytest.raises(UsageError, match="takes one repository"):
        receive.serve_git(["git-upload-pack"])
    with pytest.raises(UsageError, match="takes one repository"):
        receive.serve_git(["git-upload-pack", "a", "b"])


@pytest.mark.parametrize("repo", ["../x", "a/b", "Bad", "caddy.git"])
def test_serve_git_refuses_bad_app_names(home, repo):
    with pytest.raises(UsageError, match="invalid app name"):
        receive.serve_git(["git-upload-pack", repo])


def test_serve_git_fetch_of_a_missing_app_is_refused(home):
    with pytest.raises(UsageError, match="app nope does not exist"):
        receive.serve_git(["git-upload-pack", "~/nope.git"])
