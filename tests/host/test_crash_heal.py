"""podku killed between each pair of steps of a real swap, under load through Caddy: the next
command (`podku doctor`, the next deploy, or `ps:retire`) heals the app, and not one request
fails, during the crashes or after them.

The kill is swap.py's fault injection: PODKU_CRASH_AFTER=STEP makes podku exit at once
(os._exit(75), no cleanup) right after STEP."""

import json
import time

PODKU = "~/.local/share/podku/venv/bin/podku"
CRASH_EXIT_CODE = 75
STEPS = ("units", "checked", "record", "enable", "symlink", "links", "outcomes", "retire")
HEALERS = ("doctor", "deploy", "retire")

# Run inside the host as the deploy user: what every record and link says, as JSON.
STATE_SCRIPT = r'''
import glob, json, os, subprocess, sys
app = sys.argv[1]
home = os.path.expanduser("~")
root = f"{home}/.local/state/podku/apps/{app}"
units = f"{home}/.config/systemd/user"
def link(path):
    try:
        return os.readlink(path)
    except OSError:
        return None
outcomes = {}
for path in glob.glob(f"{root}/releases/*.json"):
    outcomes[int(os.path.basename(path)[:-5])] = json.load(open(path))["outcome"]
active = subprocess.run(["systemctl", "--user", "list-units", f"{app}-r*", "--state=active", "--plain",
                         "--no-legend", "--all"], capture_output=True, text=True).stdout.split("\n")
print(json.dumps({
    "live": json.load(open(f"{root}/app.json"))["live_release"],
    "symlink": link(f"{home}/.local/state/podku/sock/{app}.sock"),
    "alias": link(f"{units}/{app}.service"),
    "enabled": sorted(n for n in os.listdir(f"{units}/sockets.target.wants") if n.startswith(f"{app}-r")),
    "outcomes": outcomes,
    "active": sorted(line.split()[0] for line in active if line.strip()),
    "unit_files": sorted(n for n in os.listdir(units) if n.startswith(f"{app}-r")),
}))
'''


def app_state(host, app: str) -> dict:
    (host.root / "opt" / "crash-heal-state.py").write_text(STATE_SCRIPT)
    result = host.as_deploy_user(f"python3 /opt/crash-heal-state.py {app}")
    state = json.loads(result.stdout)
    state["outcomes"] = {int(key): value for key, value in state["outcomes"].items()}
    return state


def assert_healed(host, app: str) -> int:
    """Exactly one live release, the record's, and everything else agrees with it."""
    state = app_state(host, app)
    live = state["live"]
    assert [n for n, outcome in state["outcomes"].items() if outcome == "live"] == [live], state
    assert state["symlink"].endswith(f"/{app}/web-r{live}.sock"), state
    assert state["alias"] == f"{app}-r{live}.service", state
    assert state["enabled"] == [f"{app}-r{live}.socket"], state
    assert f"{app}-r{live}.socket" in state["active"], state
    assert host.http_get(f"{app}.podku.localhost")[1].endswith(f" r{live}")
    return live


def crash_swap(host, app: str, step: str) -> None:
    crashed = host.as_deploy_user(f"PODKU_CRASH_AFTER={step} {PODKU} ps:restart {app}", check=False)
    assert crashed.returncode == CRASH_EXIT_CODE, (step, crashed.stdout, crashed.stderr)


def heal(host, app: str, healer: str, before: int) -> None:
    if healer == "doctor":
        host.ssh("doctor", app)
    elif healer == "deploy":
        host.ssh("ps:restart", app)
    else:  # the retirement of whichever of the two releases is not live
        state = app_state(host, app)
        leftover = max(state["outcomes"]) if state["live"] == before else before
        host.as_deploy_user(f"{PODKU} ps:retire {app} {leftover}")


def leftovers(state: dict, app: str) -> list:
    """Units of releases that are not live, and outcomes a finished retirement does not leave."""
    live = state["live"]
    units = [unit for unit in state["active"] + state["unit_files"]
             if not unit.startswith((f"{app}-r{live}.", f"{app}-r{live}-"))]
    outcomes = [(n, outcome) for n, outcome in state["outcomes"].items()
                if n != live and outcome not in ("failed", "retired")]
    return units + outcomes


def wait_for_retirements(host, app: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while leftovers(app_state(host, app), app) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert leftovers(app_state(host, app), app) == [], app_state(host, app)


def test_a_swap_killed_after_any_step_is_healed_by_the_next_command(host, app_repo, load_run):
    app = app_repo.app
    app_repo.deploy("crash")
    host.ssh("checks:set", app, "wait-to-retire", "1")
    with load_run(app) as run:
        for number, step in enumerate(STEPS):
            healer = HEALERS[number % len(HEALERS)]
            before = app_state(host, app)["live"]
            crash_swap(host, app, step)
            heal(host, app, healer, before)
            assert_healed(host, app)
            print(f"crash after {step}, healed by {healer}: release {app_state(host, app)['live']} live")
        wait_for_retirements(host, app)
    run.assert_no_failures()
    assert host.ssh("doctor", app).stdout.strip().endswith("nothing to fix")
