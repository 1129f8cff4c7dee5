"""Deploy-task containers: the argv podman gets, without podman."""

from podku import deploytasks
from podku.host import podman as podman_module
from podku.releases import Release
from podku.runtime import storage


def task_argv(monkeypatch, release: Release) -> list[str]:
    seen: list[list[str]] = []
    monkeypatch.setattr(podman_module, "stream", lambda argv, on_line: seen.append(argv))
    deploytasks.run_task(release, "predeploy", ["./migrate", "--all"], "/run/env")
    assert len(seen) == 1
    return seen[0]


def test_a_task_gets_the_release_limits_and_storage_mounts_like_every_container_of_it(home, monkeypatch):
    release = Release(app="web", id=4, rev="r", image="localhost/podku/web:r4", description="d",
                      resources={"memory": 64 << 20, "cpus": 0.5, "pids": 128}, mounts=["data:/data"])
    argv = task_argv(monkeypatch, release)
    flags = release.podman_flags()
    assert "--memory=67108864" in flags and f"--volume={storage.directory('data')}:/data:U" in flags
    image_at = argv.index(release.image)
    assert argv[image_at - len(flags):image_at] == flags  # options, before the image
    assert argv[image_at + 1:] == ["./migrate", "--all"]
    assert "--network=none" in argv and argv[:2] == ["podman", "run"]


def test_a_task_of_a_release_without_settings_gets_no_extra_flags(home, monkeypatch):
    release = Release(app="web", id=1, rev="r", image="img", description="d")
    argv = task_argv(monkeypatch, release)
    assert release.podman_flags() == []
    assert argv[argv.index("img") - 1] == "podku.oneoff=web"
