# podku's gunicorn settings, loaded through GUNICORN_CMD_ARGS=--config=... in every app
# container (an app whose command line passes -c/--config loads only its own file).
#
# Why: gunicorn answers a request and closes the connection without reading a body the
# app did not read (a 405, an auth refusal, a redirect). Caddy writes the request body after
# the headers; when gunicorn has already closed, that write fails and Caddy answers 502
# instead of passing on the answer it holds. Reading the rest of the body before the close
# (up to MAX_DRAIN_BYTES) lets Caddy's write finish, so the client gets the app's answer.
import os

MAX_DRAIN_BYTES = 64 * 1024 * 1024

# gunicorn reads ./gunicorn.conf.py by default; keep doing that for the app.
_apps_file = os.path.join(os.getcwd(), "gunicorn.conf.py")
if os.path.isfile(_apps_file) and os.path.realpath(_apps_file) != os.path.realpath(__file__):
    with open(_apps_file) as _handle:
        exec(compile(_handle.read(), _apps_file, "exec"))
_apps_post_request = globals().get("post_request")


def _drain(req):
    body = getattr(req, "body", None)
    left = MAX_DRAIN_BYTES
    while body is not None and left > 0:
        chunk = body.read(min(left, 64 * 1024))
        if not chunk:
            return
        left -= len(chunk)


def post_request(worker, req, environ, resp):
    try:
        _drain(req)
    except Exception:  # the client went away, or a body gunicorn cannot parse: close as before
        pass
    if _apps_post_request is not None:
        _apps_post_request(worker, req, environ, resp)
