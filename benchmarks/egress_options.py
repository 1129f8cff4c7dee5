#!/usr/bin/env python3
"""Egress options for app containers, measured on a booted test host (issue 16).

For each way rootless podman 4.3.1 can give a container outbound network, with N apps
running: the PSS (and RSS) the network adds per app (slirp4netns, conmon and holder processes, over
the same containers with --network=none), the start time of a container, and what a probe
inside can reach: an "outside" HTTP server and DNS server in a namespace of the test's own
behind a veth (never a real address), the host's 127.0.0.1 (a test listener and sshd)
directly and through slirp's 10.0.2.2, the host's own address on its network, and another
app's container.

    slirp       --network=slirp4netns:allow_host_loopback=false, one slirp4netns per container
    holder      one netns per app: a sleeping holder container with that slirp4netns, the app's
                containers join it with --network=ns:PATH (the builds' network)
    cni         one podman (CNI) bridge network per app, --opt isolate=true; every network in
                podman's one rootless netns, one slirp4netns for all
    cni-open    the same without isolate (to show what isolate blocks)

Run as root:  sudo python3 benchmarks/egress_options.py [--apps 5] [--json FILE]
(the test host is booted with SYSTEMD_NSPAWN_API_VFS_WRITABLE=network: the CNI options need it)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "host"))
sys.path.insert(0, str(HERE))

import testhost  # noqa: E402

IMAGE = "localhost/podku/python:3.11"
HOST_SIDE, OUT_SIDE = "10.198.0.1/30", "10.198.0.2/30"
HOST_ADDRESS, OUT_ADDRESS = HOST_SIDE.split("/")[0], OUT_SIDE.split("/")[0]
OUT_PORT, LOOPBACK_PORT, PUBLIC_PORT = 8080, 9999, 9998
DNS_NAME = "www.outside.test"

DNS_SERVER = r"""
import socket, struct, sys
address = sys.argv[1]
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind((address, 53))
print("ready", flush=True)
while True:
    data, peer = sock.recvfrom(512)
    if len(data) < 12:
        continue
    end = 12
    while end < len(data) and data[end]:
        end += 1 + data[end]
    question = data[12:end + 5]
    labels, i = [], 12
    while i < end:
        labels.append(data[i + 1:i + 1 + data[i]].decode(errors="replace")); i += 1 + data[i]
    name = ".".join(labels).lower()
    qtype = struct.unpack(">H", data[end + 1:end + 3])[0] if len(data) >= end + 3 else 0
    found = name.endswith("outside.test") and qtype == 1
    header = data[:2] + struct.pack(">HHHHH", 0x8180 if found else 0x8183, 1, 1 if found else 0, 0, 0)
    answer = (b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + socket.inet_aton(address)) if found else b""
    sock.sendto(header + question + answer, peer)
"""

PROBE = r"""
import json, socket, sys, urllib.request
targets = json.loads(sys.argv[1])
result = {}
for label, host, port in targets:
    try:
        if label == "outside-http":
            body = urllib.request.urlopen(f"http://{host}:{port}/hello", timeout=5).read().decode().strip()
            result[label] = "reached: " + body
        else:
            socket.create_connection((host, port), timeout=3).close()
            result[label] = "reached"
    except Exception as error:
        result[label] = "refused: " + type(error).__name__ + " " + str(error)[:60]
try:
    result["dns"] = "resolved " + socket.gethostbyname(sys.argv[2])
except Exception as error:
    result["dns"] = "failed: " + str(error)[:60]
result["resolv.conf"] = " ".join(line.split()[1] for line in open("/etc/resolv.conf") if line.startswith("nameserver"))
print("PROBE " + json.dumps(result))
"""

PSS = r"""
for pid in $(pgrep -u podku); do
  comm=$(cat /proc/$pid/comm 2>/dev/null) || continue
  kb=$(awk '/^Pss:/ {print $2}' /proc/$pid/smaps_rollup 2>/dev/null)
  rss=$(awk '/^Rss:/ {print $2}' /proc/$pid/smaps_rollup 2>/dev/null)
  echo "$comm ${kb:-0} ${rss:-0}"
done
"""


def user(host, script: str, check: bool = True):
    return host.as_deploy_user(script, check=check)


def memory_by_command(host) -> tuple[dict[str, int], dict[str, int]]:
    """KiB of PSS and of RSS of the deploy user's processes, by command name."""
    pss: dict[str, int] = {}
    rss: dict[str, int] = {}
    for line in host.sh(PSS).stdout.splitlines():
        rest, _, resident = line.rpartition(" ")
        comm, _, proportional = rest.rpartition(" ")
        if comm and proportional.isdigit() and resident.isdigit():
            pss[comm] = pss.get(comm, 0) + int(proportional)
            rss[comm] = rss.get(comm, 0) + int(resident)
    return pss, rss


def outside(host) -> list[subprocess.Popen]:
    """The outside network: a namespace behind a veth with an HTTP and a DNS server."""
    netns = f"{host.netns}-out"
    subprocess.run(["ip", "netns", "delete", netns], check=False, stderr=subprocess.DEVNULL)
    for argv in (["ip", "netns", "add", netns], ["ip", "-n", netns, "link", "set", "lo", "up"],
                 ["ip", "-n", host.netns, "link", "add", "eg0", "type", "veth", "peer", "name", "eg1",
                  "netns", netns],
                 ["ip", "-n", host.netns, "addr", "add", HOST_SIDE, "dev", "eg0"],
                 ["ip", "-n", host.netns, "link", "set", "eg0", "up"],
                 ["ip", "-n", netns, "addr", "add", OUT_SIDE, "dev", "eg1"],
                 ["ip", "-n", netns, "link", "set", "eg1", "up"]):
        subprocess.run(argv, check=True)
    served = host.workdir / "outside"
    served.mkdir(exist_ok=True)
    (served / "hello").write_text("hello from outside\n")
    http = subprocess.Popen(["ip", "netns", "exec", netns, sys.executable, "-m", "http.server", "--bind",
                             OUT_ADDRESS, "--directory", str(served), str(OUT_PORT)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    dns = subprocess.Popen(["ip", "netns", "exec", netns, sys.executable, "-c", DNS_SERVER, OUT_ADDRESS],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert dns.stdout.readline().strip() == "ready"
    # the host resolves through the outside DNS server, as a VPS through its provider's
    (host.root / "etc" / "resolv.conf").write_text(f"nameserver {OUT_ADDRESS}\n")
    return [http, dns]


def listeners(host) -> None:
    host.run(["systemd-run", "--unit", "egress-loopback", "python3", "-m", "http.server", "--bind", "127.0.0.1",
              "--directory", "/var/tmp", str(LOOPBACK_PORT)], check=False)
    host.run(["systemd-run", "--unit", "egress-public", "python3", "-m", "http.server", "--bind", HOST_ADDRESS,
              "--directory", "/var/tmp", str(PUBLIC_PORT)], check=False)
    time.sleep(1)


def targets(other: tuple[str, int] | None, gateway: str | None) -> list:
    found = [("outside-http", OUT_ADDRESS, OUT_PORT),
             ("own-127.0.0.1:22", "127.0.0.1", 22),
             ("slirp-10.0.2.2:22", "10.0.2.2", 22),
             ("slirp-10.0.2.2:listener", "10.0.2.2", LOOPBACK_PORT),
             ("host-address:listener", HOST_ADDRESS, PUBLIC_PORT),
             ("host-address:22", HOST_ADDRESS, 22)]
    if other:
        found.append(("other-app", *other))
    if gateway:
        found.append(("gateway:22", gateway, 22))
    return found


def probe(host, network_flags: str, other, gateway) -> dict:
    (host.root / "var" / "tmp" / "probe.py").write_text(PROBE)
    spec = json.dumps(targets(other, gateway))
    result = user(host, f"podman run --rm {network_flags} -v /var/tmp/probe.py:/probe.py:ro {IMAGE} "
                        f"python3 /probe.py '{spec}' {DNS_NAME}", check=False)
    for line in result.stdout.splitlines():
        if line.startswith("PROBE "):
            return json.loads(line[6:])
    return {"error": (result.stdout + result.stderr)[-400:]}


def start_time(host, network_flags: str, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        started = time.monotonic()
        user(host, f"podman run --rm {network_flags} {IMAGE} true")
        times.append(time.monotonic() - started)
    return statistics.median(times)


def cleanup(host) -> None:
    user(host, "podman rm -f -a -t 0 >/dev/null; podman network prune -f >/dev/null", check=False)
    time.sleep(1)


def run_apps(host, mode: str, count: int) -> tuple[list[str], str | None]:
    """`count` apps, each one 'web' container sleeping; per app the flags its containers get."""
    flags = []
    gateway = None
    for number in range(count):
        app = f"eg{number}"
        if mode == "none":
            flag = "--network=none"
        elif mode == "slirp":
            flag = "--network=slirp4netns:allow_host_loopback=false"
        elif mode == "holder":
            user(host, f"podman run -d --name {app}-net --network=slirp4netns:allow_host_loopback=false "
                       f"--read-only --cap-drop=all {IMAGE} sleep infinity >/dev/null")
            path = user(host, f"podman inspect --format '{{{{.NetworkSettings.SandboxKey}}}}' {app}-net").stdout.strip()
            flag = f"--network=ns:{path}"
        else:
            isolate = "--opt isolate=true" if mode == "cni" else ""
            user(host, f"podman network create {isolate} {app} >/dev/null")
            flag = f"--network={app}"
            if gateway is None:
                gateway = json.loads(user(host, f"podman network inspect {app}").stdout)[0]["subnets"][0]["gateway"]
        user(host, f"podman run -d --name {app}-web {flag} {IMAGE} sleep infinity >/dev/null")
        flags.append(flag)
    return flags, gateway


def measure(host, mode: str, count: int, baseline: dict | None) -> dict:
    cleanup(host)
    flags, gateway = run_apps(host, mode, count)
    time.sleep(2)
    pss, rss = memory_by_command(host)
    report: dict = {"mode": mode, "pss_kib": pss, "rss_kib": rss}
    if baseline is not None:
        report["added_kib_per_app"] = (sum(pss.values()) - sum(baseline["pss_kib"].values())) / count
        report["added_rss_kib_per_app"] = (sum(rss.values()) - sum(baseline["rss_kib"].values())) / count
    if mode != "none":
        # app 1 serves on 8000 in its container; app 0 probes it
        server_flag = flags[1]
        user(host, f"podman run -d --name eg1-srv {server_flag} {IMAGE} python3 -m http.server 8000 >/dev/null")
        time.sleep(2)
        if mode.startswith("cni"):
            address = user(host, "podman inspect --format '{{range .NetworkSettings.Networks}}{{.IPAddress}}"
                                 "{{end}}' eg1-srv").stdout.strip()
        else:
            address = "10.0.2.100"  # every slirp4netns namespace gives its container this address
        report["probe"] = probe(host, flags[0], (address, 8000), gateway)
        report["probe_same_app"] = probe(host, flags[1], ("127.0.0.1" if mode == "holder" else address, 8000),
                                         None).get("other-app")
        report["start_seconds"] = start_time(host, flags[0])
        report["slirp4netns_processes"] = int(host.sh("pgrep -c -u podku slirp4netns || true").stdout.strip() or 0)
    else:
        report["start_seconds"] = start_time(host, "--network=none")
    return report


def cni_extras(host) -> dict:
    """The CNI network's config, where the shared slirp4netns lives, and whether it outlives
    the systemd unit that started the first container."""
    cleanup(host)
    extras: dict = {}
    user(host, "podman network create --opt isolate=true ega >/dev/null; "
               "podman network create --opt isolate=true egb >/dev/null")
    extras["conflist"] = user(host, "cat ~/.config/cni/net.d/ega.conflist", check=False).stdout
    user(host, f"systemd-run --user --unit egress-a podman run --rm --name a --network=ega {IMAGE} sleep infinity")
    time.sleep(4)
    user(host, f"systemd-run --user --unit egress-b podman run --rm --name b --network=egb {IMAGE} sleep infinity")
    time.sleep(4)
    extras["slirp_cgroup"] = host.sh("for p in $(pgrep -u podku slirp4netns); do cat /proc/$p/cgroup | tail -1; "
                                     "tr '\\0' ' ' < /proc/$p/cmdline; echo; done").stdout
    user(host, "systemctl --user stop egress-a")
    time.sleep(2)
    extras["after_first_unit_stopped"] = user(
        host, f"podman exec b python3 -c \"import urllib.request;print(urllib.request.urlopen("
              f"'http://{OUT_ADDRESS}:{OUT_PORT}/hello',timeout=5).read())\"", check=False).stdout.strip()
    user(host, "systemctl --user stop egress-b", check=False)
    time.sleep(2)
    extras["slirp_after_all_stopped"] = host.sh("pgrep -a -u podku slirp4netns || echo none").stdout.strip()
    # a host that resolves through a resolver on its own loopback (systemd-resolved's 127.0.0.53)
    loopback_dns = subprocess.Popen(["ip", "netns", "exec", host.netns, sys.executable, "-c", DNS_SERVER,
                                     "127.0.0.1"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        loopback_dns.stdout.readline()
        (host.root / "etc" / "resolv.conf").write_text("nameserver 127.0.0.1\n")
        extras["dns_host_loopback_resolver_cni"] = {k: v for k, v in probe(host, "--network=ega", None, None).items()
                                                    if k in ("dns", "resolv.conf")}
        extras["dns_host_loopback_resolver_slirp"] = {
            k: v for k, v in probe(host, "--network=slirp4netns:allow_host_loopback=false", None, None).items()
            if k in ("dns", "resolv.conf")}
    finally:
        loopback_dns.terminate()
        (host.root / "etc" / "resolv.conf").write_text(f"nameserver {OUT_ADDRESS}\n")
    extras["network_backend"] = user(host, "podman info --format '{{.Host.NetworkBackend}}'",
                                     check=False).stdout.strip()
    return extras


def socket_activation(host, flag: str) -> str:
    """An fd 3 app (the test app) started by systemd-socket-activate with this network."""
    (host.root / "var" / "tmp" / "testapp.py").write_text((testhost.APPS_DIR / "testapp.py").read_text())
    user(host, f"systemd-run --user --unit egress-fd3 systemd-socket-activate -l 127.0.0.1:7001 "
               f"podman run --rm --name fd3 {flag} -v /var/tmp/testapp.py:/app.py:ro -e MESSAGE=fd3 {IMAGE} "
               f"python3 /app.py")
    time.sleep(1)
    answer = host.sh("curl -sS --max-time 20 http://127.0.0.1:7001/", check=False)
    user(host, "systemctl --user stop egress-fd3", check=False)
    return (answer.stdout + answer.stderr).strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--apps", type=int, default=5)
    parser.add_argument("--json")
    args = parser.parse_args()
    # The CNI bridge plugin writes /proc/sys/net/ipv4/ip_forward in rootless podman's network
    # namespace: nspawn mounts /proc/sys read-only unless told (a VPS has it writable there).
    os.environ.setdefault("SYSTEMD_NSPAWN_API_VFS_WRITABLE", "network")
    rootfs, base_tar = testhost.build_images()
    host = testhost.TestHost("egressbench", rootfs, base_tar)
    servers: list[subprocess.Popen] = []
    results: dict = {}
    try:
        started = time.monotonic()
        host.boot()
        host.install()
        print(f"host ready in {time.monotonic() - started:.0f}s", flush=True)
        servers = outside(host)
        listeners(host)
        results["podman"] = user(host, "podman version --format '{{.Client.Version}}'; "
                                       "podman info --format '{{.Host.NetworkBackend}}'").stdout.split()
        results["slirp_run_accepted"] = user(
            host, f"podman run --rm --network=slirp4netns:allow_host_loopback=false {IMAGE} true && echo yes",
            check=False).stdout.strip() or "no"
        baseline = measure(host, "none", args.apps, None)
        results["none"] = baseline
        print(json.dumps(baseline), flush=True)
        for mode in ("slirp", "holder", "cni", "cni-open"):
            results[mode] = measure(host, mode, args.apps, baseline)
            print(json.dumps(results[mode]), flush=True)
        results["cni_extras"] = cni_extras(host)
        print(json.dumps(results["cni_extras"]), flush=True)
        cleanup(host)
        user(host, "podman network create --opt isolate=true egfd3 >/dev/null")
        results["fd3_cni"] = socket_activation(host, "--network=egfd3")
        user(host, f"podman run -d --name fd3-net --network=slirp4netns:allow_host_loopback=false {IMAGE} "
                   "sleep infinity >/dev/null")
        path = user(host, "podman inspect --format '{{.NetworkSettings.SandboxKey}}' fd3-net").stdout.strip()
        results["fd3_holder"] = socket_activation(host, f"--network=ns:{path}")
        print(json.dumps({k: results[k] for k in ("podman", "slirp_run_accepted", "fd3_cni", "fd3_holder")}),
              flush=True)
    finally:
        for server in servers:
            server.terminate()
        host.destroy()
        subprocess.run(["ip", "netns", "delete", f"{host.netns}-out"], check=False, stderr=subprocess.DEVNULL)
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
