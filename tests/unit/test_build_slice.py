"""On cgroup v2 a build's limits hold its RUN steps too: a transient slice of its own carries
them, podman runs in a scope in it and puts the RUN containers there (--cgroup-parent)."""

import contextlib
from pathlib import Path

import pytest

from fakes import FakeManager, FakePodman
from podku import naming
from podku.host import podman as podman_module
from podku.host import systemd
from podku.image import build, builders, limits

UNIT = "podku-build-web-r3"
SLICE = "podku-build-web_r3.slice"
BOUNDS = limits.BuildLimits(build_timeout=100, build_memory="160M", build_tasks=64)


class Cgroups(FakePodman):
    def __init__(self, version: str):
        super().__init__()
        self.version = version

    def cgroups(self) -> tuple[str, str]:
        return self.version, "cpu memory pids"


def build_argv(monkeypatch, version: str, fail_stream: bool = False) -> tuple[list[str], FakeManager]:
    manager, streamed = FakeManager(), []

    def stream(argv, on_line, **kwargs):
        streamed.append(argv)
        if fail_stream:
            raise build.PodkuError("exit status 1")

    monkeypatch.setattr(systemd, "manager", manager)
    monkeypatch.setattr(podman_module, "engine", Cgroups(version))
    monkeypatch.setattr(build, "stream", stream)
    monkeypatch.setattr(build, "build_network", lambda unit, seconds: contextlib.nullcontext("ns:/x"))
    monkeypatch.setattr(build, "prepare_build", lambda source, tag: builders.Prepared(builders.CONTAINERFILE, []))
    monkeypatch.setattr(build, "image_built", lambda tag: True)
    monkeypatch.setattr(limits, "load", lambda: BOUNDS)
    with contextlib.suppress(build.BuildFailed):
        build.build_image(Path("."), "localhost/podku/web:r3", UNIT)
    return streamed[0], manager


def test_on_cgroup_v2_the_run_containers_go_in_the_builds_limited_slice(monkeypatch):
    argv, manager = build_argv(monkeypatch, "v2")
    scope = argv[:argv.index("--")]
    assert f"--slice={SLICE}" in scope and f"--unit={UNIT}" in scope
    podman = argv[argv.index("--") + 1:]
    assert podman[:4] == ["podman", "--cgroup-manager=systemd", "build", f"--cgroup-parent={SLICE}:podku-run:web_r3"]
    assert manager.calls[0] == ("start_slice", f"{SLICE} MemoryMax={160 * 1024 ** 2} TasksMax=64")
    assert manager.calls[-1] == ("stop", SLICE)  # gone with the build


def test_the_slice_goes_when_the_build_fails_too(monkeypatch):
    _argv, manager = build_argv(monkeypatch, "v2", fail_stream=True)
    assert manager.ops("start_slice", "stop") == [("start_slice", f"{SLICE} MemoryMax={160 * 1024 ** 2} "
                                                   "TasksMax=64"), ("stop", SLICE)]


@pytest.mark.parametrize("version", ["v1", ""])
def test_without_cgroup_v2_podman_builds_as_before_in_its_limited_scope(monkeypatch, version):
    argv, manager = build_argv(monkeypatch, version)
    assert not any(word.startswith(("--slice", "--cgroup-parent", "--cgroup-manager")) for word in argv)
    assert argv[argv.index("--") + 1:][:2] == ["podman", "build"]
    assert "--property=MemoryMax=160M" in argv and manager.calls == []


def test_a_slice_left_by_a_killed_build_is_stopped_and_made_again(monkeypatch):
    manager = FakeManager()
    starts: list[str] = []

    def start_slice(name, memory_max, tasks_max):
        starts.append(name)
        if len(starts) == 1:
            raise systemd.SystemdError(f"cannot start {name}: Unit {name} already exists.")

    monkeypatch.setattr(systemd, "manager", manager)
    monkeypatch.setattr(manager, "start_slice", start_slice)
    with build.build_slice(SLICE, BOUNDS):
        assert starts == [SLICE] * 2 and manager.ops("stop") == [("stop", SLICE)]
    assert manager.ops("stop") == [("stop", SLICE)] * 2


def test_no_slice_is_a_one_line_build_failure(monkeypatch):
    manager = FakeManager()
    monkeypatch.setattr(systemd, "manager", manager)

    def refuse(name, memory_max, tasks_max):
        raise systemd.SystemdError(f"cannot start {name}: Access denied")

    monkeypatch.setattr(manager, "start_slice", refuse)
    with pytest.raises(build.BuildFailed, match="^cannot make the build's slice: cannot start .*: Access denied$"):
        with build.build_slice(SLICE, BOUNDS):
            pytest.fail("built without its slice")


def test_the_watchdog_watches_and_kills_the_whole_slice(monkeypatch, tmp_path):
    group = tmp_path / SLICE
    (group / f"{UNIT}.scope").mkdir(parents=True)
    (group / "memory.events").write_text("oom 1\noom_kill 2\n")  # the RUN container's kills count here
    (group / f"{UNIT}.scope" / "memory.events").write_text("oom 0\noom_kill 0\n")
    monkeypatch.setattr(build, "cgroup_of", lambda pid: group / f"{UNIT}.scope")
    assert build.build_group(10, UNIT) == group
    assert build.oom_kills_in_scope(10, UNIT) == 2
    walked = []
    monkeypatch.setattr(build, "pids_in", lambda where: walked.append(where) or [10, 11])
    monkeypatch.setattr(build.os, "kill", lambda pid, sig: None)
    build.kill_scope_except(10, UNIT)
    assert walked == [group]


@pytest.mark.parametrize(("size", "expected"), [("768M", 768 * 1024 ** 2), ("2G", 2 * 1024 ** 3),
                                                ("512", 512), ("64K", 65536), ("1T", 1024 ** 4)])
def test_memory_sizes_in_bytes_as_systemd_reads_them(size, expected):
    assert limits.memory_bytes(size) == expected


@pytest.mark.parametrize(("unit", "expected"), [
    ("podku-build-web-r3", "podku-build-web_r3.slice"),
    ("podku-build-my-app-r12", "podku-build-my_app_r12.slice"),  # no slice of its own for `my`
    ("podku-build-a--b-r1", "podku-build-a__b_r1.slice"),  # `--` would be no slice name at all
])
def test_every_build_slice_is_a_valid_name_directly_in_podku_build_slice(unit, expected):
    assert naming.build_slice(unit) == expected
