"""Numbered release records: what ran, from which revision, image and config, and how it went."""

import time
from dataclasses import asdict, dataclass, field, replace

from podku import paths, state
from podku.errors import UsageError

# draining: swapped out, still finishing its in-flight requests until it is retired
PENDING, LIVE, DRAINING, FAILED, RETIRED = "pending", "live", "draining", "failed", "retired"


@dataclass(frozen=True)
class Release:
    app: str
    id: int
    rev: str
    image: str
    description: str
    config: dict[str, str] = field(default_factory=dict)
    app_json: dict = field(default_factory=dict)
    port: int | None = None  # an EXPOSEd port: the app binds $PORT, bridged to the socket
    created: float = field(default_factory=time.time)
    outcome: str = PENDING

    @property
    def unit(self) -> str:
        """The release's systemd unit name, without the .socket/.service suffix."""
        return f"{self.app}-r{self.id}"

    @property
    def container(self) -> str:
        return f"podku-{self.app}-r{self.id}"

    @property
    def socket_unit(self) -> str:
        return f"{self.unit}.socket"

    @property
    def web_unit(self) -> str:
        """The service the socket starts: the app itself, or the bridge to a $PORT app."""
        return f"{self.unit}.service"

    @property
    def units(self) -> list[str]:
        """Every unit of the release, the socket first (stopping it stops what it feeds)."""
        names = [self.socket_unit, self.web_unit]
        return names + [f"{self.unit}-app.service"] if self.port else names

    @property
    def app_unit(self) -> str:
        """The unit whose processes are the app's (what `systemctl --user status APP` shows)."""
        return f"{self.unit}-app.service" if self.port else self.web_unit

    def environment_file(self) -> str:
        """The app's environment in podman's --env-file format: its config and who it is."""
        env = {**self.config, "PODKU_APP": self.app, "PODKU_RELEASE": str(self.id)}
        return "".join(f"{key}={value}\n" for key, value in sorted(env.items()))

    def with_outcome(self, outcome: str) -> "Release":
        return replace(self, outcome=outcome)


def save(release: Release) -> None:
    state.write_json(paths.AppPaths(release.app).release_record(release.id), asdict(release))


def load(app: str, release_id: int) -> Release:
    data = state.read_json(paths.AppPaths(app).release_record(release_id))
    if data is None:
        raise UsageError(f"release {release_id} of {app} does not exist")
    return Release(**data)


def all_of(app: str) -> list[Release]:
    """Every release of an app, newest first."""
    directory = paths.AppPaths(app).releases
    ids = sorted((int(p.stem) for p in directory.glob("*.json") if p.stem.isdigit()), reverse=True)
    return [load(app, release_id) for release_id in ids]


def next_id(app: str) -> int:
    existing = all_of(app)
    return existing[0].id + 1 if existing else 1


def new(app: str, rev: str, image: str, description: str, config: dict[str, str],
        app_json: dict | None = None, port: int | None = None) -> Release:
    release = Release(app=app, id=next_id(app), rev=rev, image=image, description=description,
                      config=dict(config), app_json=dict(app_json or {}), port=port)
    save(release)
    return release


def image_tag(app: str, release_id: int) -> str:
    return f"localhost/podku/{app}:r{release_id}"


def was_live(release: Release) -> bool:
    return release.outcome in (LIVE, DRAINING, RETIRED)
