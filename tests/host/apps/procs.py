"""The non-web processes of the host tests' Procfile app: `python3 /app/procs.py KIND`.

worker   logs a line once started, then waits for SIGTERM
release  logs the release and the config it ran with; FAIL_RELEASE=1 makes it fail
cron     logs a line"""

import os
import signal
import sys
import time


def worker() -> None:
    signal.signal(signal.SIGTERM, lambda *_ignored: sys.exit(0))
    print(f"worker: started r{os.environ.get('PODKU_RELEASE')} instance "
          f"{os.environ.get('PODKU_PROCESS_INDEX')} argv={sys.argv[2:]}", flush=True)
    while True:
        time.sleep(1)


def release() -> None:
    if os.environ.get("FAIL_RELEASE") == "1":
        print("release: failing as asked", flush=True)
        sys.exit(3)
    print(f"release: ran for r{os.environ.get('PODKU_RELEASE')} GREETING={os.environ.get('GREETING', '-')}",
          flush=True)


def cron() -> None:
    print(f"cron: ran in r{os.environ.get('PODKU_RELEASE')}", flush=True)


if __name__ == "__main__":
    {"worker": worker, "release": release, "cron": cron}[sys.argv[1]]()
