"""podku: git push to a small host; rootless Podman under systemd --user, behind Caddy."""

__version__ = "0.1.0"
