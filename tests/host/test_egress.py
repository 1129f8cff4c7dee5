"""Issue 16, egress, on an installed host over real ssh: an app's containers (fd 3 and $PORT
apps) reach a server outside the host (one the test serves in a namespace of its own behind
a veth, never an outside address) but not the host's loopback (a test listener, sshd,
Caddy's ask server, directly or through slirp4netns' 10.0.2.2) nor another app's container;
with egress off the fetch fails, and on again it works."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest

import testhost

DOMAIN = "podku.localhost"
HOST_SIDE, OUT_SIDE = "10.198.0.1/30", "10.198.0.2/30"
OUT_ADDRESS = OUT_SIDE.split("/")[0]
OUT_PORT = 8080
LISTENER_PORT = 9999  # a test listener on the host's 127.0.0.1
OTHER_PORT = 7000  # another app listens here in its own namespace
CONTAINER_ADDRESS = "10.0.2.100"  # slirp4netns gives every container this address
# Every way to the host's own loopback: the container's 127.0.0.1 (its own), slirp4netns'
# gateway to the host's (refused unless allowed), its IPv6 gateway, and the host's services
# behind them: the test listener, sshd, Caddy's ask server.
LOOPBACK_PROBES = (("127.0.0.1", LISTENER_PORT), ("127.0.0.1", 22), ("10.0.2.2", LISTENER_PORT), ("10.0.2.2", 22),
                   ("10.0.2.2", 8), ("fd00::2", 22), ("::1", 22))


@pytest.fixture(scope="module")
def outside(host):
    """An HTTP server outside the host: a namespace of its own, linked to the host's by a veth
    pair (as a VPS's provider network), serving /hello; and a listener on the host's loopback."""
    netns = f"{host.netns}-egress"
    served = host.workdir / "egress-outside"
    served.mkdir(exist_ok=True)
    (served / "hello").write_text("hello from outside\n")
    subprocess.run(["ip", "netns", "delete", netns], check=False, stderr=subprocess.DEVNULL)
    subprocess.run(["ip", "-n", host.netns, "link", "delete", "eg0"], check=False, stderr=subprocess.DEVNULL)
    for argv in (["ip", "netns", "add", netns], ["ip", "-n", netns, "link", "set", "lo", "up"],
                 ["ip", "-n", host.netns, "link", "add", "eg0", "type", "veth", "peer", "name", "eg1", "netns", netns],
                 ["ip", "-n", host.netns, "addr", "add", HOST_SIDE, "dev", "eg0"],
                 ["ip", "-n", host.netns, "link", "set", "eg0", "up"],
                 ["ip", "-n", netns, "addr", "add", OUT_SIDE, "dev", "eg1"],
                 ["ip", "-n", netns, "link", "set", "eg1", "up"]):
        subprocess.run(argv, check=True)
    server = subprocess.Popen(["ip", "netns", "exec", netns, sys.executable, "-m", "http.server", "--bind",
                               OUT_ADDRESS, "--directory", str(served), str(OUT_PORT)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    host.run(["systemd-run", "--unit", "egress-listener", "python3", "-m", "http.server", "--bind", "127.0.0.1",
              "--directory", "/var/tmp", str(LISTENER_PORT)])
    try:
        deadline = time.monotonic() + 10
        while host.sh(f"curl -sf -o /dev/null http://{OUT_ADDRESS}:{OUT_PORT}/hello && "
                      f"curl -sf -o /dev/null http://127.0.0.1:{LISTENER_PORT}/", check=False).returncode:
            assert time.monotonic() < deadline, "the outside server or the loopback listener did not start"
            time.sleep(0.2)
        yield
    finally:
        server.terminate()
        server.wait(timeout=10)
        host.run(["systemctl", "stop", "egress-listener"], check=False)
        subprocess.run(["ip", "netns", "delete", netns], check=False, stderr=subprocess.DEVNULL)
        subprocess.run(["ip", "-n", host.netns, "link", "delete", "eg0"], check=False, stderr=subprocess.DEVNULL)


def ask(host, app: str, path: str) -> str:
    status, body = host.http_get(f"{app}.{DOMAIN}", path)
    assert status == 200, (path, status, body)
    return body


def fetch(host, app: str) -> str:
    return ask(host, app, f"/fetch/{OUT_ADDRESS}/{OUT_PORT}/hello")


@pytest.mark.parametrize("expose", [None, 5000], ids=["fd3", "port"])
def test_an_app_fetches_from_outside_and_reaches_no_loopback_service_of_the_host(host, app_repo, outside, expose):
    app_repo.deploy("egress", expose=expose)
    assert fetch(host, app_repo.app) == "fetched hello from outside"
    reached = {(address, port): ask(host, app_repo.app, f"/connect/{address}/{port}")
               for address, port in LOOPBACK_PROBES}
    assert all(answer.startswith("refused") for answer in reached.values()), reached
    report = host.ssh("network:report", app_repo.app).stdout
    assert re.search(r"Live release egress:\s+on", report) and "slirp4netns:allow_host_loopback=false" in report


def test_an_app_cannot_reach_another_apps_container(host, app_repo, outside, tmp_path):
    other = testhost.AppRepo(tmp_path / "other", host, f"{app_repo.app}x")
    other.deploy("other", env={"LISTEN_ALSO": str(OTHER_PORT)})
    app_repo.deploy("egress")
    # every container is 10.0.2.100 in a slirp4netns namespace of its own: the other app
    # reaches its own listener there, this app finds only itself at that address, and no
    # other address (its own loopback, slirp's gateway to the host) leads to the other app
    assert ask(host, other.app, f"/connect/{CONTAINER_ADDRESS}/{OTHER_PORT}") == "reached"
    for address in (CONTAINER_ADDRESS, "127.0.0.1", "10.0.2.2", OUT_ADDRESS, HOST_SIDE.split("/")[0]):
        assert ask(host, app_repo.app, f"/connect/{address}/{OTHER_PORT}").startswith("refused"), address
    host.ssh("apps:destroy", other.app, "--force", check=False)


def test_with_egress_off_the_fetch_fails_and_on_again_it_works(host, app_repo, outside):
    app_repo.deploy("egress")
    assert fetch(host, app_repo.app) == "fetched hello from outside"
    host.ssh("network:set", app_repo.app, "egress", "off")
    assert fetch(host, app_repo.app).startswith("refused")
    assert re.search(r"Egress own:\s+off", host.ssh("network:report", app_repo.app).stdout)
    host.ssh("network:set", app_repo.app, "egress", "on")
    assert fetch(host, app_repo.app) == "fetched hello from outside"
    bad = host.ssh("network:set", app_repo.app, "egress", "sometimes", check=False)
    assert bad.returncode != 0 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
