"""Host-wide settings: the global domain and the proxy's port."""

from dataclasses import asdict, dataclass

from podku import names, paths, state

DEFAULT_DOMAIN = "podku.localhost"


@dataclass(frozen=True)
class Settings:
    domain: str = DEFAULT_DOMAIN
    http_port: int = 80

    def app_host(self, app: str) -> str:
        return f"{app}.{self.domain}"

    def app_url(self, app: str) -> str:
        port = "" if self.http_port == 80 else f":{self.http_port}"
        return f"http://{self.app_host(app)}{port}/"


def load() -> Settings:
    return Settings(**state.read_json(paths.SETTINGS, {}))


def save(settings: Settings) -> None:
    names.domain(settings.domain)
    if not 1 <= settings.http_port <= 65535:
        raise ValueError(f"invalid port {settings.http_port}")
    state.write_json(paths.SETTINGS, asdict(settings))
