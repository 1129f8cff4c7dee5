"""Node: package.json; the Procfile's web line, else `npm start` when it has a start script,
else `node MAIN`. It binds $PORT (5000), bridged by podku."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from podku.host import templates
from podku.image.baseimages import Base
from podku.image.builders import settings, web
from podku.image.builders.base import Builder, BuilderError

BASE = Base("node", "localhost/podku/node:18", ("nodejs", "npm", "ca-certificates"))


def render(source: Path) -> str:
    command = web.procfile_web(source) or default_command(source)
    process = web.WebProcess(web.command_argv(command), web.APP_PORT)
    has_lock = (source / "package-lock.json").is_file()
    return templates.render("builders/node.Containerfile.j2", base=BASE.image, web=process,
                            dependency_files=["package.json"] + (["package-lock.json"] if has_lock else []),
                            install="npm ci" if has_lock else "npm install",
                            registry=bool(settings.global_settings().get("npm-registry")),
                            cmd=json.dumps(process.argv))


def default_command(source: Path) -> str:
    try:
        package = json.loads((source / "package.json").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BuilderError(f"package.json is not valid JSON: {error}") from error
    if not isinstance(package, dict):
        raise BuilderError("package.json is not a JSON object")
    if isinstance(package.get("scripts"), dict) and "start" in package["scripts"]:
        return "npm start"
    main = package.get("main")
    return shlex.join(["node", main if isinstance(main, str) else "server.js"])


BUILDER = Builder(
    name="node", order=20, markers=("package.json",), looked_for="package.json",
    matches=lambda exists: exists("package.json"), base=BASE, render=render, index_keys=("npm-registry",))
