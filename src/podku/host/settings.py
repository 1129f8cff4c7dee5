"""Host-wide settings: the global domain, the proxy's ports and how HTTPS certificates are got."""

import ipaddress
from dataclasses import asdict, dataclass

from podku import names
from podku.errors import UsageError
from podku.host import paths, records, state

DEFAULT_DOMAIN = "podku.localhost"
TLS_MODES = ("auto", "internal", "off")
# Names under these never get a certificate from an ACME CA: Caddy's internal CA signs them.
INTERNAL_SUFFIXES = (".localhost", ".test", ".internal", ".local")


def is_internal(name: str) -> bool:
    """A name no public CA will sign: reserved TLDs, localhost, IP literals."""
    return name == "localhost" or name.endswith(INTERNAL_SUFFIXES) or is_ip_address(name)


def is_ip_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Settings:
    domain: str = DEFAULT_DOMAIN
    http_port: int = 80
    https_port: int = 443
    tls: str = "auto"            # auto: ACME for public names, internal CA for the rest
    acme_email: str = ""
    acme_ca: str = ""            # empty: Caddy's default (Let's Encrypt, ZeroSSL fallback)
    acme_ca_root: str = ""       # a PEM file trusted for acme_ca (a private ACME CA)

    def app_host(self, app: str) -> str:
        return f"{app}.{self.domain}"

    def uses_https(self, name: str) -> bool:
        """Whether HTTP for `name` redirects to HTTPS (public names with a real certificate)."""
        return self.tls == "auto" and not is_internal(name)

    @property
    def https_suffix(self) -> str:
        """`:PORT` after a name in an https URL, unless the port is 443."""
        return "" if self.https_port == 443 else f":{self.https_port}"

    def url(self, name: str) -> str:
        if self.uses_https(name):
            return f"https://{name}{self.https_suffix}/"
        port = "" if self.http_port == 80 else f":{self.http_port}"
        return f"http://{name}{port}/"

    def app_url(self, app: str) -> str:
        return self.url(self.app_host(app))


# podku.json: the domain and ports reach Caddy's config, the unit and every app's name.
RECORD = records.record({
    "domain": records.Field(records.validated(names.domain)),
    "http_port": records.Field(records.integer(1, 65535)),
    "https_port": records.Field(records.integer(1, 65535)),
    "tls": records.Field(records.one_of(*TLS_MODES)),
    "acme_email": records.Field(records.text(254, r"([^@\s]+@[^@\s]+)?", "an email address")),
    "acme_ca": records.Field(records.text(2048, r"(https://[!-~]+)?", "an https:// URL")),
    "acme_ca_root": records.Field(records.text(4096, r"(/[!-~]*)?", "an absolute path")),
})


def load() -> Settings:
    return Settings(**records.read(paths.SETTINGS, RECORD, {}))


def validate(settings: Settings) -> Settings:
    names.domain(settings.domain)
    if len(settings.domain) > names.MAX_HOST_NAME - 2:
        raise UsageError(f"invalid domain {settings.domain!r}: leave room for APP. (at most "
                         f"{names.MAX_HOST_NAME - 2} characters)")
    for port in (settings.http_port, settings.https_port):
        if not 1 <= port <= 65535:
            raise ValueError(f"invalid port {port}")
    if settings.tls not in TLS_MODES:
        raise UsageError(f"invalid TLS mode {settings.tls!r}: use one of {', '.join(TLS_MODES)}")
    if settings.acme_ca and not settings.acme_ca.startswith("https://"):
        raise UsageError(f"invalid ACME CA {settings.acme_ca!r}: expected an https:// directory URL")
    if settings.acme_email and (" " in settings.acme_email or "@" not in settings.acme_email):
        raise UsageError(f"invalid ACME email {settings.acme_email!r}")
    return settings


def save(settings: Settings) -> None:
    data = asdict(validate(settings))
    state.write_json(paths.SETTINGS, records.validate(data, RECORD, paths.SETTINGS))
