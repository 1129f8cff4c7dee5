"""podku on a real 1 GiB VM (cgroup v2, no swap): installed from scratch by
vagrant/provision.sh, apps pushed with git over ssh through a forwarded port, and the limits
the nspawn hosts of this cgroup v1 machine cannot enforce shown enforced by the kernel:
an app's memory, CPU and task limits, the default 256M, the build slice's MemoryMax."""

from __future__ import annotations

import threading
import time

import test_small_host  # the OOM test issue 11 wrote, run here where limits are enforced

import testhost
import vmhost

DOMAIN = "podku.localhost"
MiB = 1024 * 1024


def app_repo(vm, tmp_path, name: str) -> testhost.AppRepo:
    return vmhost.VmAppRepo(tmp_path / name, vm, name)


def get(vm, app: str, path: str = "/") -> tuple[int, str]:
    return vm.http_get(f"{app}.{DOMAIN}", path)


def wait_until(predicate, timeout: float, what: str) -> None:
    test_small_host.wait_until(predicate, timeout, what)


def container_cgroup(vm, app: str) -> str:
    """/sys/fs/cgroup/... of the app's one running container (its limits are set there)."""
    wait_until(lambda: len(test_small_host.containers(vm, app)) == 1, 120, f"{app} to run one container")
    [name] = test_small_host.containers(vm, app)
    pid = vm.as_deploy_user(f"podman inspect --format '{{{{.State.Pid}}}}' {name}").stdout.strip()
    line = vm.run(["cat", f"/proc/{pid}/cgroup"]).stdout.strip()
    assert line.startswith("0::/"), line  # cgroup v2 only: one unified hierarchy
    return "/sys/fs/cgroup" + line.removeprefix("0::")


def cgroup_file(vm, cgroup: str, name: str) -> str:
    return vm.run(["cat", f"{cgroup}/{name}"]).stdout.strip()


def restarts(vm, unit: str) -> int:
    return int(vm.as_deploy_user(f"systemctl --user show {unit} -p NRestarts --value").stdout)


class Watch:
    """GETs an app once a second in a thread while a test does something else; the failures."""

    def __init__(self, vm, app: str):
        self.vm, self.app = vm, app
        self.answers: list[tuple[int, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.answers.append(get(self.vm, self.app))
            self._stop.wait(1)

    def __enter__(self) -> Watch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=120)

    def failures(self) -> list[tuple[int, str]]:
        return [answer for answer in self.answers if answer[0] != 200]


def test_install_from_scratch_makes_a_cgroup_v2_host_that_enforces_limits(vm):
    assert "-----> " in vm.figures["install_output"]
    assert vm.run(["stat", "-fc", "%T", "/sys/fs/cgroup"]).stdout.strip() == "cgroup2fs"
    assert vm.run(["swapon", "--show", "--noheadings"]).stdout.strip() == ""
    assert vm.meminfo()["MemTotal"] <= 1024 * 1024
    uid = vm.run(["id", "-u", testhost.DEPLOY_USER]).stdout.strip()
    delegated = cgroup_file(vm, f"/sys/fs/cgroup/user.slice/user-{uid}.slice/user@{uid}.service",
                            "cgroup.controllers").split()
    assert {"memory", "pids", "cpu"} <= set(delegated), delegated
    assert vm.as_deploy_user("podman info --format '{{.Host.CgroupsVersion}}'").stdout.strip() == "v2"
    assert vm.as_deploy_user("systemctl --user is-active podku-caddy.service").stdout.strip() == "active"
    figures = vm.figures
    print(f"VM ({figures['accel']}): booted in {figures['boot_seconds']:.0f} s; install.sh "
          f"{figures['install_seconds']:.0f} s (emulated), peak {figures['install_peak_mib']:.0f} MiB used "
          f"(MemTotal - MemAvailable), {figures['used_mib_before_install']:.0f} MiB before, "
          f"{vm.used_mib():.0f} MiB at rest after, of {vm.meminfo()['MemTotal'] / 1024:.0f} MiB")


def test_a_push_over_ssh_runs_with_the_default_256m_as_its_memory_max(vm, tmp_path):
    repo = app_repo(vm, tmp_path, "plain")
    pushed = repo.deploy("plain")
    assert "-----> " in pushed.stderr
    status, body = get(vm, "plain")
    assert status == 200 and body.startswith("plain r"), (status, body)
    assert "not enforced" not in vm.ssh("resource:report", "plain").stdout
    cgroup = container_cgroup(vm, "plain")
    assert cgroup_file(vm, cgroup, "memory.max") == str(256 * MiB)
    assert cgroup_file(vm, cgroup, "memory.swap.max") in ("0", "max")  # no swap here either way


def test_an_app_over_its_64m_is_killed_and_restarted_while_a_neighbour_answers(vm, tmp_path):
    app, neighbour = "hungry", "neighbour"
    repo = app_repo(vm, tmp_path, app)
    repo.deploy("hungry")
    app_repo(vm, tmp_path, neighbour).deploy("nextdoor")
    limited = vm.ssh("resource:limit", app, "--memory", "64M", "--pids", "100", "--cpu", "0.5")
    assert "not enforced" not in limited.stdout + limited.stderr
    wait_until(lambda: get(vm, app) == (200, "hungry r2"), 120, "the limited release to answer")
    cgroup = container_cgroup(vm, app)
    assert cgroup_file(vm, cgroup, "memory.max") == str(64 * MiB)
    assert cgroup_file(vm, cgroup, "pids.max") == "100"
    quota, period = cgroup_file(vm, cgroup, "cpu.max").split()
    assert int(quota) / int(period) == 0.5
    unit = f"{app}-r2.service"  # release 1 the push, 2 the limit (naming.release_unit)
    before, kills_before = restarts(vm, unit), vm.oom_kills()
    with Watch(vm, neighbour) as watch:
        started = time.monotonic()
        status, _ = get(vm, app, "/allocate/200")  # over its 64M: killed mid-request
        seconds = time.monotonic() - started
        assert status != 200
        wait_until(lambda: get(vm, app)[0] == 200, 120, "the app back after its OOM kill")
        time.sleep(2)
    restarted, kills = restarts(vm, unit) - before, vm.oom_kills() - kills_before
    # One GET reached Caddy, and the app's journal says how often it reached the app: Caddy
    # sends a GET again when its upstream dropped the connection (a GET is idempotent; its
    # load_balancing try_duration 10s, try_interval 100ms), and the release's socket, held by
    # systemd, queues it for the restarted app, which allocates again and is killed again.
    journal = vm.ssh("logs", app, "-n", "500").stdout
    deliveries = journal.count("allocating 200 MiB")
    through_caddy = [line for line in vm.ssh("logs:access", app, "-n", "500").stdout.splitlines()
                     if "/allocate/200" in line]
    print(f"OOM kill: one GET of /allocate/200 ({seconds:.1f} s, status {status}) reached the app "
          f"{deliveries} times; {kills} OOM kills; NRestarts {before} -> {before + restarted}; "
          f"{len(watch.answers)} requests to the neighbour meanwhile, none failed")
    print("\n".join(line for line in journal.splitlines()
                    if "allocating" in line or "restart" in line.lower() or "oom" in line.lower()))
    assert len(through_caddy) == 1, through_caddy
    assert deliveries >= 1 and restarted == deliveries == kills, (deliveries, restarted, kills)
    assert watch.answers and watch.failures() == [], watch.failures()


def test_the_small_host_oom_test_of_issue_11_passes_here(vm, tmp_path):
    """tests/host/test_small_host.py's test: on the nspawn hosts it can only take its
    "not enforced" branch; here the limits are enforced and it must take the other."""
    repo = app_repo(vm, tmp_path, "limited")
    test_small_host.test_memory_limits_are_enforced_or_said_plainly_not_to_be(vm, repo)
    assert "not enforced" not in vm.ssh("resource:report", "limited").stdout


RUN_CGROUPS = r"""for comm in /proc/[0-9]*/comm; do
  [ "$(cat "$comm" 2>/dev/null)" = sleep ] && cat "${comm%comm}cgroup" 2>/dev/null
done; true"""


def run_step_cgroups(vm, app: str) -> list[str]:
    """/proc/PID/cgroup, as the host sees it, of every `sleep` a RUN step of `app` runs now.
    Inside the step /proc/self/cgroup reads 0::/ whatever its place: a private cgroup namespace."""
    lines = vm.run(["sh", "-c", RUN_CGROUPS]).stdout.splitlines()
    return [line for line in lines if f"/podku-build-{app}_r" in line]


def test_a_build_over_its_memory_max_fails_plainly_while_a_live_app_answers(vm, tmp_path):
    live = app_repo(vm, tmp_path, "live")
    live.deploy("live")
    vm.as_deploy_user("mkdir -p ~/.config/podku && printf '%s' '{\"build_memory\": \"160M\"}' "
                      "> ~/.config/podku/limits.json")
    try:
        greedy = app_repo(vm, tmp_path, "greedy")
        greedy.write(extra="RUN cat /proc/self/cgroup && python3 -c \"b = b'x' * (400 << 20); print(len(b))\"")
        with Watch(vm, "live") as watch:
            refused = greedy.push(check=False)
        output = refused.stdout + refused.stderr
        assert refused.returncode != 0, output
        print("build over its memory:", output[-1500:])
        assert "used more than its memory limit of 160M" in output, output
        assert watch.answers and watch.failures() == [], watch.failures()
        small = app_repo(vm, tmp_path, "scoped")
        small.write(extra="RUN cat /proc/self/cgroup\nRUN cat /proc/self/cgroup && sleep 90")  # two: one scope name
        pushed: list = []
        pusher = threading.Thread(target=lambda: pushed.append(small.push(check=False)), daemon=True)
        pusher.start()
        wait_until(lambda: run_step_cgroups(vm, "scoped") or not pusher.is_alive(), 600, "the RUN step's sleep")
        found = run_step_cgroups(vm, "scoped")
        print("RUN sleep's /proc/PID/cgroup:", found)
        assert found, "no RUN step seen"
        for line in found:
            parent, _, inside = line.removeprefix("0::").partition("/podku-build-scoped_r")
            slice_name, _, container = inside.partition("/")
            assert parent.endswith("/podku-build.slice") and slice_name.endswith(".slice"), line
            assert container.startswith("podku-run-scoped_r") and container.endswith(".scope"), line
        pusher.join(timeout=900)
        assert pushed and pushed[0].returncode == 0, pushed and pushed[0].stderr[-2000:]
        leftover = vm.run(["sh", "-c", "find /sys/fs/cgroup -name 'podku-build-*_r*.slice'"]).stdout.split()
        assert leftover == [], leftover  # every build's slice is gone with it
    finally:
        vm.as_deploy_user("rm -f ~/.config/podku/limits.json")


def test_a_python_builder_push_answers_and_its_peak_memory_is_reported(vm, tmp_path):
    """No Containerfile: the python builder makes a venv and runs pip (an empty
    requirements.txt: the VM has no route to a package index)."""
    repo = app_repo(vm, tmp_path, "builtpy")
    (repo.path / "Containerfile").unlink(missing_ok=True)
    (repo.path / "requirements.txt").write_text("")
    (repo.path / "Procfile").write_text("web: python3 testapp.py\n")
    repo._git("add", "-A")
    repo._git("commit", "-q", "-m", "python builder")
    with vm.peak_memory() as peak:
        pushed = repo.push()
    assert "using the python builder" in pushed.stderr, pushed.stderr[-2000:]
    status, body = get(vm, "builtpy")
    assert status == 200 and body.startswith("hello r"), (status, body)
    print(f"python builder push: peak {peak.mib:.0f} MiB used (MemTotal - MemAvailable), "
          f"{vm.used_mib():.0f} MiB after")
