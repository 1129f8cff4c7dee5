"""A disposable test host with podku and the example app, until Ctrl-C (tests/try.sh)."""

import signal
import sys
import time

import testhost


def main() -> None:
    host = testhost.TestHost("demo", *testhost.build_images())
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        host.boot()
        print(host.install("--example").stdout, flush=True)
        status, body = host.http_get("hello.podku.localhost")
        print(f"The example app answers through Caddy ({status}): {body.strip()}")
        print(f"  ip netns exec {host.netns} curl -H 'Host: hello.podku.localhost' http://127.0.0.1/")
        ssh = f"ssh -i {host.key} -o StrictHostKeyChecking=accept-new"
        print(f"  ip netns exec {host.netns} {ssh} podku@127.0.0.1 apps:list")
        print(f"  GIT_SSH_COMMAND='{ssh}' ip netns exec {host.netns} git push podku@127.0.0.1:myapp main")
        print("Ctrl-C stops and removes the test host.", flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        host.destroy()


if __name__ == "__main__":
    main()
