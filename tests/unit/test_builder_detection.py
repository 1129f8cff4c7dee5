import json
import os
import socket
import subprocess
import sys

import pytest
from click.testing import CliRunner

from podku import apps
from podku.cli.main import cli
from podku.host import templates
from podku.image import baseimages, builders, procfile


def tree(path, files: dict[str, str]):
    for name, text in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    return path


# --- detection --------------------------------------------------------------------------

@pytest.mark.parametrize("files, expected", [
    ({"Containerfile": "", "requirements.txt": ""}, "containerfile"),
    ({"Dockerfile": "", "package.json": "{}"}, "containerfile"),
    ({"requirements.txt": "", "package.json": "{}"}, "python"),
    ({"pyproject.toml": "", "uv.lock": ""}, "python"),
    ({"pyproject.toml": "", "poetry.lock": ""}, "python"),
    ({"package.json": "{}", "public/index.html": ""}, "node"),
    ({"public/index.html": ""}, "static"),
    ({".static": "", "index.html": ""}, "static"),
])
def test_detection_order(tmp_path, files, expected):
    assert builders.detect(builders.in_tree(tree(tmp_path, files))) == expected


def test_a_pyproject_without_a_lock_and_nothing_else_matches_no_builder(tmp_path):
    tree(tmp_path, {"pyproject.toml": "", "index.html": "", "containerfile": ""})
    with pytest.raises(builders.NoBuilder) as error:
        builders.detect(builders.in_tree(tmp_path))
    message = str(error.value)
    for looked_for in ("Containerfile", "Dockerfile", "requirements.txt", "uv.lock", "poetry.lock",
                       "package.json", "public/index.html", ".static"):
        assert looked_for in message
    assert "\n" not in message


def test_a_symlinked_marker_does_not_count(tmp_path):
    (tmp_path / "requirements.txt").symlink_to("/etc/passwd")
    with pytest.raises(builders.NoBuilder):
        builders.detect(builders.in_tree(tmp_path))


def test_a_forced_builder_wins_over_detection(home, tmp_path):
    tree(tmp_path, {"requirements.txt": "", "public/index.html": ""})
    builders.set_selected("shop", "static")
    assert builders.chosen(tmp_path, "shop") == "static"
    assert json.loads(builders.app_settings_path("shop").read_text()) == {"builder": "static"}
    builders.set_selected("shop", "auto")
    assert builders.chosen(tmp_path, "shop") == "python"


# --- Procfile and web process -------------------------------------------------------------

def test_the_web_command_comes_from_the_one_procfile_parser(tmp_path):
    tree(tmp_path, {"Procfile": "# c\n\nweb: gunicorn 'app:app'\nworker: python w.py\n"})
    assert builders.procfile_web(tmp_path) == "gunicorn 'app:app'"
    for bad in ("Web: x", "web gunicorn", "web:", "we b: x", "web: a\nweb: b", "../x: y"):
        tree(tmp_path, {"Procfile": bad})
        with pytest.raises(procfile.ProcfileInvalid):
            builders.procfile_web(tmp_path)


@pytest.mark.parametrize("command, argv, port", [
    ("gunicorn app:app", ["gunicorn", "app:app"], None),
    ("gunicorn --bind fd://3 app:app", ["gunicorn", "app:app"], None),
    ("gunicorn -b 0.0.0.0:$PORT --workers 2 app:app", ["gunicorn", "--workers", "2", "app:app"], None),
    ("gunicorn --bind=0.0.0.0:${PORT} -b:80 app:app", ["gunicorn", "app:app"], None),
    ("python3 -m gunicorn app:app", ["python3", "-m", "gunicorn", "app:app"], None),
    ("uvicorn main:app", ["uvicorn", "main:app", "--fd", "3"], None),
    ("uvicorn main:app --fd 3", ["uvicorn", "main:app", "--fd", "3"], None),
    ("uvicorn main:app --host 0.0.0.0 --port $PORT",
     ["uvicorn", "main:app", "--host", "0.0.0.0", "--port", "5000"], 5000),
    ("uvicorn main:app --port=8080", ["uvicorn", "main:app", "--port=8080"], 8080),
    ("python app.py", ["python", "app.py"], 5000),
    ("node server.js 'a b'", ["node", "server.js", "a b"], 5000),
])
def test_web_process(command, argv, port):
    assert builders.web_process(command) == builders.WebProcess(argv, port)


@pytest.mark.parametrize("command", ["gunicorn app:app; rm -rf /", "node $(id).js", "a `b`", "a && b",
                                     "a | b", "echo $HOME", "a > f", "'unterminated", "uvicorn m:a --uds /x"])
def test_shell_syntax_and_bad_commands_are_refused(command):
    with pytest.raises(builders.ProcfileError):
        builders.web_process(command)


# --- rendering ----------------------------------------------------------------------------

def lines(text):
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_python_dependencies_are_their_own_layer_before_the_code(home, tmp_path):
    tree(tmp_path, {"requirements.txt": "flask\n", "Procfile": "web: gunicorn app:app\n"})
    rendered = lines(builders.render("python", tmp_path))
    copy_requirements = rendered.index('COPY ["requirements.txt", "/app/"]')
    install = next(i for i, line in enumerate(rendered) if "pip install" in line)
    assert copy_requirements < install < rendered.index('CMD ["gunicorn", "app:app"]')
    assert rendered[-1] == "COPY . /app"  # the only step a code-only change rebuilds
    assert not any(line.startswith("EXPOSE") or " PORT=" in line for line in rendered)
    assert any("PIP_CERT=/etc/ssl/certs/ca-certificates.crt" in line for line in rendered)
    assert "ARG PIP_INDEX_URL" not in rendered


def test_python_port_apps_expose_port(home, tmp_path):
    tree(tmp_path, {"requirements.txt": "", "Procfile": "web: python3 app.py\n"})
    rendered = lines(builders.render("python", tmp_path))
    assert "EXPOSE 5000" in rendered and any(" PORT=5000" in line for line in rendered)


def test_a_python_app_needs_a_web_process(home, tmp_path):
    tree(tmp_path, {"requirements.txt": ""})
    with pytest.raises(builders.ProcfileError, match="web:"):
        builders.render("python", tmp_path)


def test_uv_and_poetry_install_from_their_locks(home, tmp_path):
    tree(tmp_path, {"pyproject.toml": "", "uv.lock": "", "Procfile": "web: uvicorn m:app\n"})
    rendered = builders.render("python", tmp_path)
    assert 'COPY ["pyproject.toml", "uv.lock", "/app/"]' in rendered and "uv sync --frozen" in rendered
    (tmp_path / "uv.lock").unlink()
    (tmp_path / "poetry.lock").write_text("")
    assert "poetry install --only main" in builders.render("python", tmp_path)


def test_node_uses_npm_ci_with_a_lock_and_binds_port(home, tmp_path):
    tree(tmp_path, {"package.json": '{"main": "server.js"}'})
    rendered = lines(builders.render("node", tmp_path))
    assert 'COPY ["package.json", "/app/"]' in rendered
    assert any(line.startswith("RUN npm install ") for line in rendered)
    assert 'CMD ["node", "server.js"]' in rendered and "EXPOSE 5000" in rendered
    (tmp_path / "package-lock.json").write_text("{}")
    (tmp_path / "Procfile").write_text("web: node web.js --port $PORT\n")
    rendered = lines(builders.render("node", tmp_path))
    assert 'COPY ["package.json", "package-lock.json", "/app/"]' in rendered
    assert any(line.startswith("RUN npm ci ") for line in rendered)
    assert 'CMD ["node", "web.js", "--port", "5000"]' in rendered
    (tmp_path / "Procfile").unlink()
    (tmp_path / "package.json").write_text('{"scripts": {"start": "node x.js"}}')
    assert 'CMD ["npm", "start"]' in lines(builders.render("node", tmp_path))


def test_static_serves_public_with_podkus_server(home, tmp_path):
    tree(tmp_path, {"public/index.html": "hi"})
    rendered = builders.render("static", tmp_path)
    assert 'COPY ["public", "/srv/www"]' in rendered and "COPY --from=podku static-server.py" in rendered
    assert lines(rendered)[-1] == 'COPY ["public", "/srv/www"]'


def test_index_urls_are_build_args_not_file_text(home, tmp_path):
    url = "http://127.0.0.1:3141/simple/"
    builders.set_global("pip-index-url", url)
    tree(tmp_path, {"requirements.txt": "", "Procfile": "web: gunicorn app:app\n"})
    rendered = builders.render("python", tmp_path)
    assert url not in rendered and "ARG PIP_INDEX_URL\n" in rendered
    assert builders.build_args("python") == ["--build-arg", f"PIP_INDEX_URL={url}"]
    assert builders.build_args("node") == []


def test_prepare_writes_the_containerfile_outside_the_tree(home, tmp_path, monkeypatch):
    monkeypatch.setattr(baseimages, "ensure", lambda name: None)
    source = tree(tmp_path / "src", {"requirements.txt": "", "Procfile": "web: gunicorn app:app\n"})
    before = sorted(p.name for p in source.rglob("*"))
    argv = builders.prepare(source, "shop").build_args
    assert argv[0] == "--file" and not argv[1].startswith(str(source))
    assert sorted(p.name for p in source.rglob("*")) == before
    assert builders.prepare(source, "shop").build_args == argv  # content-addressed: one file per content
    tree(source, {"Containerfile": "FROM scratch\n"})
    own_file = ["--file", str(source / "Containerfile")]
    assert builders.prepare(source, "shop") == builders.Prepared("containerfile", own_file)


def test_prepare_for_static_adds_podkus_build_context(home, tmp_path, monkeypatch):
    monkeypatch.setattr(baseimages, "ensure", lambda name: None)
    argv = builders.prepare(tree(tmp_path, {".static": ""})).build_args
    assert argv[-2:] == ["--build-context", f"podku={templates.units_dir() / 'builders'}"]
    assert (templates.units_dir() / "builders" / "static-server.py").is_file()


# --- validation of what users type ----------------------------------------------------------

HOSTILE = ["x;id", "$(id)", "../static", "--", "py\nthon", "a" * 10000, "", " python", "python ", "PYTHON"]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_builder_names_are_refused_on_one_line_and_change_nothing(home, value):
    apps.save(apps.App("shop"))
    result = CliRunner().invoke(cli, ["builder:set", "shop", "--", value] if value != "--" else
                                ["builder:set", "shop", "--", "--"])
    assert result.exit_code != 0
    assert not builders.app_settings_path("shop").exists()


@pytest.mark.parametrize("value", ["file:///etc/passwd", "http://a b/", "http://x/\nfoo", "ftp://x/",
                                   "http:///nohost", "javascript:alert(1)", "http://user:pw@x/", "x" * 3000,
                                   "http://x/\x7f", "http://ü/", "-- ", "$(id)"])
def test_hostile_index_urls_are_refused(home, value):
    builders.set_global("npm-registry", "https://registry.example/")
    with pytest.raises(builders.UsageError) as error:
        builders.set_global("pip-index-url", value)
    assert "\n" not in str(error.value) and len(str(error.value)) < 200
    assert builders.global_settings() == {"npm-registry": "https://registry.example/"}


def test_unknown_global_keys_are_refused(home):
    with pytest.raises(builders.UsageError):
        builders.set_global("../pip", "http://x/")
    assert builders.global_settings() == {}


def test_set_global_and_unset(home):
    builders.set_global("npm-registry", "http://127.0.0.1:3141/npm/")
    assert builders.global_settings() == {"npm-registry": "http://127.0.0.1:3141/npm/"}
    builders.set_global("npm-registry", None)
    assert builders.global_settings() == {}


# --- the static server ----------------------------------------------------------------------

def test_static_server_serves_fd_3_and_hides_what_it_must(tmp_path, socket_dir):
    root = tree(tmp_path / "www", {"index.html": "hello", ".secret": "no", "sub/page.html": "page"})
    (root / "out").symlink_to("/etc")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(socket_dir / "static.sock"))
    listener.listen(16)
    server = subprocess.Popen([sys.executable, str(templates.units_dir() / "builders" / "static-server.py"), str(root)],
                              pass_fds=(listener.fileno(), 3), env={"LISTEN_FDS": "1", "PATH": "/usr/bin:/bin"},
                              preexec_fn=lambda: os.dup2(listener.fileno(), 3))
    try:
        def get(path):
            with socket.socket(socket.AF_UNIX) as client:
                client.settimeout(10)
                client.connect(str(socket_dir / "static.sock"))
                client.sendall(f"GET {path} HTTP/1.0\r\n\r\n".encode())
                data = b""
                while chunk := client.recv(65536):
                    data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            return int(head.split()[1]), body.decode()
        assert get("/") == (200, "hello")
        assert get("/sub/page.html") == (200, "page")
        for path in ("/.secret", "/out/passwd", "/../../etc/passwd", "/sub/", "/missing"):
            assert get(path)[0] == 404, path
        server.terminate()
        assert server.wait(timeout=5) == 0  # SIGTERM ends it at once, as PID 1 too
    finally:
        server.kill()
        listener.close()


@pytest.mark.parametrize("args", [["pip-index-url"], ["pip-index-url", "--"], ["pip-index-url", "--", "--unset"],
                                  ["pip-index-url", "http://x/", "--unset"]])
def test_set_global_needs_a_url_or_unset_and_nothing_else(home, args):
    builders.set_global("pip-index-url", "http://127.0.0.1:1/simple/")
    assert CliRunner().invoke(cli, ["builder:set-global", *args]).exit_code != 0
    assert builders.global_settings() == {"pip-index-url": "http://127.0.0.1:1/simple/"}
    assert CliRunner().invoke(cli, ["builder:set-global", "pip-index-url", "--unset"]).exit_code == 0
    assert builders.global_settings() == {}


def test_every_module_of_the_builders_package_is_a_builder_in_detection_order():
    assert [builder.name for builder in builders.REGISTRY] == ["containerfile", "python", "node", "static"]
    assert builders.bases()[0].image == "localhost/podku/python:3.11"
    assert {base.name for base in builders.bases()} == {"python", "node"}
