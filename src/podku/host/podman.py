"""The one seam to podman, as systemd.py is the seam to the user manager: every podman call
podku makes at run time goes through `engine`, so unit tests put an in-memory podman
(tests/unit/fakes.py) in its place with one assignment. What a container runs with (its
`podman run` argument list in a unit file, a task or a build) is built by the callers; this
module runs and asks podman. One podman command does not pass here: a build's `podman build`
runs inside a bounded systemd scope (image/build.py hands its argument list to systemd-run)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import IO, Protocol

from podku.host.commands import child_env, interactive, last_line, reading, run, run_to_file, stream


class Podman(Protocol):
    def image_exists(self, image: str) -> bool: ...

    def remove_image(self, image: str) -> None: ...

    def tag_image(self, image: str, tag: str) -> None: ...

    def untag_image(self, tag: str) -> None: ...

    def prune_images(self) -> None: ...

    def exposed_ports(self, image: str) -> list[str]: ...

    def container_pid(self, container: str) -> int | None: ...

    def sandbox(self, container: str) -> str: ...

    def start(self, argv: Sequence[str]) -> None: ...

    def run_task(self, argv: Sequence[str], on_line: Callable[[str], None]) -> None: ...

    def run_interactive(self, argv: Sequence[str], on_hangup: Callable[[], None]) -> int: ...

    def unshare_reading(self, argv: Sequence[str], ok: tuple[int, ...],
                        on_stderr: Callable[[str], None]) -> AbstractContextManager[IO[bytes]]: ...

    def labelled(self, label: str, value: str) -> list[str]: ...

    def remove_containers(self, names: Sequence[str]) -> None: ...

    def cgroups(self) -> tuple[str, str]: ...

    def import_image(self, image: str, stream: IO[bytes]) -> subprocess.CompletedProcess: ...

    def run_with_input(self, argv: Sequence[str], text: str) -> subprocess.CompletedProcess: ...

    def exec_in(self, container: str, argv: Sequence[str]) -> subprocess.CompletedProcess: ...

    def unshare_remove(self, path: str) -> None: ...

    def pull(self, source: str, prefix: Sequence[str] = ()) -> str: ...

    def image_size(self, image: str) -> int: ...

    def running(self, app: str, release: int) -> list[str]: ...

    def inspect(self, containers: Sequence[str]) -> list[dict]: ...

    def put_secret(self, name: str, value: str) -> None: ...

    def remove_secret(self, name: str) -> None: ...

    def image_command(self, image: str) -> list[str]: ...

    def build_layer(self, context: str, image: str) -> None: ...

    def push(self, image: str) -> None: ...

    def exec_to(self, container: str, argv: Sequence[str], env: Mapping[str, str], out: IO[bytes]) -> None: ...

    def exec_from(self, container: str, argv: Sequence[str], env: Mapping[str, str],
                  source: IO[bytes]) -> subprocess.CompletedProcess: ...

    def exec_interactive(self, container: str, argv: Sequence[str], env: Mapping[str, str], tty: bool) -> int: ...


@contextlib.contextmanager
def env_file(env: Mapping[str, str]) -> Iterator[str]:
    """A private (0600) --env-file: a password given to a process in a container never
    appears on a command line."""
    with tempfile.NamedTemporaryFile("w", prefix="podku-exec-", suffix=".env") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write("".join(f"{key}={value}\n" for key, value in env.items()))
        handle.flush()
        yield handle.name


class RealPodman:
    """podman itself, through host.commands (argument lists, the debug log, one-line errors)."""

    def image_exists(self, image: str) -> bool:
        return run(["podman", "image", "exists", image], check=False).returncode == 0

    def remove_image(self, image: str) -> None:
        run(["podman", "image", "rm", "--ignore", image], check=False)

    def tag_image(self, image: str, tag: str) -> None:
        """Give an image another name (apps:rename, apps:clone): no copy, the same layers."""
        run(["podman", "image", "tag", image, tag])

    def untag_image(self, tag: str) -> None:
        """Take one name off an image; the image stays while it has another."""
        run(["podman", "image", "untag", tag, tag], check=False)

    def prune_images(self) -> None:
        """The build cache removed images leave dangling; layers kept images share stay."""
        run(["podman", "image", "prune", "--force"], check=False)

    def exposed_ports(self, image: str) -> list[str]:
        """The image's EXPOSEd ports as podman lists them (`5000/tcp`)."""
        result = run(["podman", "image", "inspect", "--format", "{{json .Config.ExposedPorts}}", image])
        return list(json.loads(result.stdout.strip() or "null") or {})

    def container_pid(self, container: str) -> int | None:
        result = run(["podman", "inspect", "--format", "{{.State.Pid}}", container], check=False)
        text = result.stdout.strip()
        return int(text) if result.returncode == 0 and text.isdigit() and int(text) > 0 else None

    def sandbox(self, container: str) -> str:
        """The path of a running container's network namespace."""
        return run(["podman", "inspect", "--format", "{{.NetworkSettings.SandboxKey}}", container]).stdout.strip()

    def start(self, argv: Sequence[str]) -> None:
        """`podman run --detach ARGV`: a container left running."""
        run(["podman", "run", "--detach", *argv])

    def run_task(self, argv: Sequence[str], on_line: Callable[[str], None]) -> None:
        """`podman run ARGV` to its end, each output line passed on; raises CommandFailed."""
        stream(["podman", "run", *argv], on_line)

    def run_interactive(self, argv: Sequence[str], on_hangup: Callable[[], None]) -> int:
        """`podman run ARGV` on podku's own terminal or pipes; its exit code."""
        return interactive(["podman", "run", *argv], on_hangup=on_hangup)

    def unshare_reading(self, argv: Sequence[str], ok: tuple[int, ...],
                        on_stderr: Callable[[str], None]) -> AbstractContextManager[IO[bytes]]:
        """ARGV run in the user namespace the containers write in, its stdout read as a stream."""
        return reading(["podman", "unshare", *argv], ok=ok, on_stderr=on_stderr)

    def labelled(self, label: str, value: str) -> list[str]:
        found = run(["podman", "ps", "--all", "--quiet", "--filter", f"label={label}={value}"], check=False)
        return found.stdout.split()

    def remove_containers(self, names: Sequence[str]) -> None:
        if names:
            run(["podman", "rm", "--force", "--ignore", "--time", "0", *names], check=False)

    def cgroups(self) -> tuple[str, str]:
        """(cgroup version, delegated controllers) as podman sees them; ('', why) if it cannot say."""
        result = run(["podman", "info", "--format", "{{.Host.CgroupsVersion}} {{.Host.CgroupControllers}}"],
                     check=False)
        if result.returncode != 0:
            return "", result.stderr.strip() or "podman info failed"
        version, _, controllers = result.stdout.strip().partition(" ")
        return version, controllers

    def import_image(self, image: str, stream: IO[bytes]) -> subprocess.CompletedProcess:
        """`podman import - IMAGE` from a stream (a root file system as tar)."""
        return subprocess.run(["podman", "import", "--quiet", "-", image], stdin=stream, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, env=child_env())

    def run_with_input(self, argv: Sequence[str], text: str) -> subprocess.CompletedProcess:
        """`podman run --interactive ARGV` fed `text` on stdin, to its end; output captured."""
        return run(["podman", "run", "--interactive", *argv], input=text, check=False)

    def exec_in(self, container: str, argv: Sequence[str]) -> subprocess.CompletedProcess:
        """`podman exec CONTAINER ARGV` to its end; output captured, never raises."""
        return run(["podman", "exec", container, *argv], check=False)

    def unshare_remove(self, path: str) -> None:
        """Remove a directory tree that containers wrote as their subordinate users."""
        run(["podman", "unshare", "rm", "-rf", "--", path])

    def pull(self, source: str, prefix: Sequence[str] = ()) -> str:
        """`podman pull SOURCE` (a transport:path or a registry reference), run after `prefix`
        (a bounded scope); the pulled image's ID. Raises CommandFailed."""
        result = run([*prefix, "podman", "pull", "--quiet", source])
        return last_line(result.stdout)

    def image_size(self, image: str) -> int:
        text = run(["podman", "image", "inspect", "--format", "{{.Size}}", image]).stdout.strip()
        return int(text) if text.isdigit() else 0

    def running(self, app: str, release: int) -> list[str]:
        """The names of the running containers of an app's release."""
        found = run(["podman", "ps", "--format", "{{.Names}}", "--filter", f"label=podku.app={app}",
                     "--filter", f"label=podku.release={release}"], check=False)
        return found.stdout.split()

    def inspect(self, containers: Sequence[str]) -> list[dict]:
        """podman's inspect of the named containers (those gone meanwhile left out)."""
        if not containers:
            return []
        result = run(["podman", "container", "inspect", *containers], check=False)
        try:
            # stderr is folded in: an error about a container gone meanwhile follows the JSON
            found, _end = json.JSONDecoder().raw_decode(result.stdout[max(result.stdout.find("["), 0):])
        except ValueError:
            return []
        return [item for item in found if isinstance(item, dict)] if isinstance(found, list) else []

    def put_secret(self, name: str, value: str) -> None:
        """A podman secret NAME holding `value`, replacing one of that name (podman 4.3 has
        no `create --replace`; one left by a destroyed app of the same name must not win).
        The value goes through a 0600 temporary file, never a command line or an environment."""
        self.remove_secret(name)
        with tempfile.NamedTemporaryFile("wb", prefix="podku-secret-") as data:
            data.write(value.encode())
            data.flush()
            run(["podman", "secret", "create", name, data.name])

    def remove_secret(self, name: str) -> None:
        run(["podman", "secret", "rm", name], check=False)

    def image_command(self, image: str) -> list[str]:
        """The image's entrypoint and command, as a container of it runs them."""
        result = run(["podman", "image", "inspect", "--format", "{{json .Config.Entrypoint}}\n{{json .Config.Cmd}}",
                      image])
        entrypoint, _, cmd = result.stdout.strip().partition("\n")
        return [*(json.loads(entrypoint or "null") or []), *(json.loads(cmd or "null") or [])]

    def build_layer(self, context: str, image: str) -> None:
        """A small layer on an image podku has (apps:export's launcher): its Containerfile in
        `context` only copies files (nothing of the image runs), no network, no pull."""
        run(["podman", "build", "--quiet", "--network=none", "--pull=never", "--tag", image, context])

    def push(self, image: str) -> None:
        """`podman push IMAGE` to the registry its name says, with podman's own credentials
        (its auth file, as `podman login` wrote it): podku never takes a password."""
        run(["podman", "push", "--quiet", image])

    def exec_to(self, container: str, argv: Sequence[str], env: Mapping[str, str], out: IO[bytes]) -> None:
        """`podman exec` with its stdout going to `out` (binary); raises CommandFailed with its stderr."""
        with env_file(env) as name:
            run_to_file(["podman", "exec", "--env-file", name, container, *argv], out)

    def exec_from(self, container: str, argv: Sequence[str], env: Mapping[str, str],
                  source: IO[bytes]) -> subprocess.CompletedProcess:
        """`podman exec --interactive` reading the open file `source`; output captured, never raises."""
        with env_file(env) as name:
            return run(["podman", "exec", "--interactive", "--env-file", name, container, *argv],
                       stdin=source, check=False)

    def exec_interactive(self, container: str, argv: Sequence[str], env: Mapping[str, str], tty: bool) -> int:
        """`podman exec` on podku's own terminal or pipes (a tty when it has one); its exit code."""
        with env_file(env) as name:
            return interactive(["podman", "exec", "--interactive", *(["--tty"] if tty else []),
                                "--env-file", name, container, *argv])


engine: Podman = RealPodman()
