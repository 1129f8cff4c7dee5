"""Builds leave the host's network: ADD of a URL is refused (podman fetches it from the host
itself), and RUN steps join a slirp4netns network without the host's loopback."""

from pathlib import Path

import pytest

from podku.host import podman as podman_module
from podku.host.commands import CommandFailed
from podku.image import build, builders, limits

BASE = "FROM localhost/podku/python:3.11\n"
HOSTILE_ADDS = [
    "ADD http://127.0.0.1:2020/check?domain=x /x",
    "ADD http://localhost/ /x",
    "ADD http://[::1]/ /x",
    "ADD http://0x7f.1/ /x",
    "ADD http://2130706433/ /x",
    "ADD http://127.1/ /x",
    "ADD http://0.0.0.0:22/ /x",
    "ADD http://[::ffff:127.0.0.1]/ /x",
    "ADD http://127.0.0.1.nip.io:2020/ /x",  # a public name for the host's loopback
    "ADD https://example.com/redirects-to-loopback /x",  # podman follows redirects
    "add HTTP://LOCALHOST/ /x",
    "Add --chown=1:1 http://localhost/ /x",
    'ADD ["http://127.0.0.1:2020/", "/x"]',
    "ADD \\\n  http://127.0.0.1:2020/ \\\n  /x",
    "ADD http:/\\\n/127.0.0.1:2020/ /x",
    "ONBUILD ADD http://127.0.0.1/ /x",
    "ADD git@127.0.0.1:repo.git /x",
    "ARG U=http://127.0.0.1:2020/\nADD $U /x",
    "ADD ${U} /x",
]


@pytest.mark.parametrize("line", HOSTILE_ADDS)
def test_add_of_a_url_or_a_variable_is_refused_naming_its_line(line):
    reason = build.build_file_refusal(BASE + "COPY . /app\n" + line + "\n")
    assert reason is not None, line
    number = 3 if not line.startswith("ARG") else 4
    assert reason.startswith(f"line {number}: "), reason
    assert "\n" not in reason


def test_the_escape_directive_is_followed_too():
    reason = build.build_file_refusal("# escape=`\n" + BASE + "ADD `\n  http://127.0.0.1:2020/ /x\n")
    assert reason == ("line 3: ADD of a URL is not supported: podman would fetch it from the host itself, "
                      "its loopback services included; download it in a RUN step")


@pytest.mark.parametrize("containerfile", [
    BASE + "ADD . /app\n",
    BASE + "ADD --chown=1000:1000 app.tar.gz /app/\n",
    BASE + "COPY . /app\nRUN curl -fsSL https://example.com/x -o /x\n",
    BASE + "# ADD http://127.0.0.1/ is only a comment\nCOPY . /app\n",
    BASE + "RUN echo http://127.0.0.1/ > /url\n",
])
def test_local_add_and_downloads_in_run_are_allowed(containerfile):
    assert build.build_file_refusal(containerfile) is None


def test_check_build_file_says_it_on_one_line(tmp_path):
    (tmp_path / "Containerfile").write_text(BASE + "ADD http://127.0.0.1:2020/ /x\n")
    with pytest.raises(build.BuildFailed, match=r"^Containerfile: line 2: ADD of a URL is not supported"):
        build.check_build_file(tmp_path / "Containerfile")


# --- the build's network ----------------------------------------------------------------------

class FakePodman:
    def __init__(self, fail_run: bool = False, sandbox: str = "/run/user/1000/netns/netns-abc"):
        self.calls: list[list[str]] = []
        self.fail_run, self.sandbox = fail_run, sandbox

    def run(self, argv, check=True, **kwargs):
        self.calls.append(list(argv))
        if argv[:2] == ["podman", "run"] and self.fail_run:
            raise CommandFailed(argv, 125, "Error: slirp4netns failed: open /dev/net/tun: permission denied")
        stdout = self.sandbox + "\n" if argv[:2] == ["podman", "inspect"] else ""
        return type("Result", (), {"stdout": stdout, "returncode": 0})()

    def commands(self, verb: str) -> list[list[str]]:
        return [argv for argv in self.calls if argv[1] == verb]


def test_runs_join_a_slirp_network_without_host_loopback_that_is_removed_after(monkeypatch):
    podman = FakePodman()
    monkeypatch.setattr(podman_module, "run", podman.run)
    with build.build_network("podku-build-web-r3", 1860) as network:
        assert network == "ns:/run/user/1000/netns/netns-abc"
        assert podman.commands("rm") == []
    started = podman.commands("run")[0]
    assert "--network=slirp4netns:allow_host_loopback=false" in started
    assert started[started.index("--timeout") + 1] == "1860"  # ends by itself should podku die
    assert started[-2:] == ["sleep", "1860"]
    assert started[started.index("--name") + 1] == "podku-build-web-r3-network"
    assert podman.commands("rm") == [["podman", "rm", "--force", "--ignore", "--time", "0",
                                      "podku-build-web-r3-network"]]


def test_the_network_goes_when_the_build_fails(monkeypatch):
    podman = FakePodman()
    monkeypatch.setattr(podman_module, "run", podman.run)
    with pytest.raises(build.BuildFailed), build.build_network("podku-build-web-r3", 60):
        raise build.BuildFailed("image build failed")
    assert len(podman.commands("rm")) == 1


@pytest.mark.parametrize("podman", [FakePodman(fail_run=True), FakePodman(sandbox="")])
def test_no_network_is_a_one_line_build_failure_naming_what_is_needed(monkeypatch, podman):
    monkeypatch.setattr(podman_module, "run", podman.run)
    with pytest.raises(build.BuildFailed, match="cannot give the build a network") as failed:
        with build.build_network("podku-build-web-r3", 60):
            pytest.fail("built without a network")
    assert "\n" not in str(failed.value) and "/dev/net/tun" in str(failed.value)
    assert len(podman.commands("rm")) == 1


def test_podman_build_gets_that_network_and_slirps_dns_never_the_hosts(home, monkeypatch, tmp_path):
    podman = FakePodman()
    streamed: list[list[str]] = []
    monkeypatch.setattr(podman_module, "run", podman.run)
    monkeypatch.setattr(build, "stream", lambda argv, on_line, **kwargs: streamed.append(argv))
    monkeypatch.setattr(build, "prepare_build", lambda source, tag: builders.Prepared(builders.CONTAINERFILE, []))
    monkeypatch.setattr(limits, "load", lambda: limits.BuildLimits(build_timeout=100))
    build.build_image(Path(tmp_path), "localhost/podku/web:r3", "podku-build-web-r3")
    argv = streamed[0]
    assert "--network=ns:/run/user/1000/netns/netns-abc" in argv and "--dns=10.0.2.3" in argv
    assert not any(word == "--network=host" or word.startswith("--net=") for word in argv)
    assert argv.index("podman") > argv.index("--")  # inside the build's scope
    assert podman.commands("run")[0][podman.commands("run")[0].index("--timeout") + 1] == "160"
