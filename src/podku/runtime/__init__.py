"""What every container of a release runs with: its limits (resources), its storage mounts
(storage), its links to services (links), its idle timeout (idle), its outbound network
(network), podku's gunicorn settings (gunicorn) and, for a $PORT app, the bridge to its
socket (bridge). A release records the app's settings when it is made (snapshot) and gives
every container it starts the same flags (podman_flags)."""

from podku.runtime import idle, links, network, resources, storage


def snapshot(app: str) -> dict:
    """The app's runtime settings as a new release records them (Release's fields)."""
    return {"resources": resources.effective(app), "mounts": storage.mounts(app), "idle_timeout": idle.timeout(app),
            "links": links.recorded(app), "egress": network.egress(app)}


def podman_flags(limits: dict, mounts: list[str], linked: list[str] | None = None) -> list[str]:
    """A release's limits, storage mounts and services' sockets as `podman run` flags."""
    return [*resources.podman_flags(limits), *storage.podman_flags(mounts), *links.podman_flags(linked or [])]
