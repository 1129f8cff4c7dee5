"""What certificates Caddy holds, read from its storage (it obtains and renews them itself)."""

from pathlib import Path

from podku import output
from podku.host import commands as run
from podku.host import paths


def caddy_data() -> Path:
    """Caddy's default storage for the deploy user: $XDG_DATA_HOME/caddy."""
    return paths.DATA.parent / "caddy"



def files_for(name: str) -> list[Path]:
    """The certificate files of `name`, one per issuer that signed one."""
    return sorted((caddy_data() / "certificates").glob(f"*/{name}/{name}.crt"))


def read(path: Path) -> dict[str, str]:
    """issuer, names, expiry of one PEM certificate (openssl prints them)."""
    text = run.run(["openssl", "x509", "-in", str(path), "-noout", "-issuer", "-enddate",
                    "-ext", "subjectAltName", "-nameopt", "oneline"]).stdout
    lines = [line.strip() for line in text.splitlines()]
    issuer = next((line.removeprefix("issuer=").strip() for line in lines if line.startswith("issuer=")), "?")
    expiry = next((line.removeprefix("notAfter=") for line in lines if line.startswith("notAfter=")), "?")
    sans = next((line for line in lines if line.startswith("DNS:") or line.startswith("IP")), "")
    names = ", ".join(part.split(":", 1)[-1] for part in sans.split(", ") if part)
    return {"issuer": issuer, "names": names, "expires": expiry}


def describe(name: str) -> str:
    found = files_for(name)
    if not found:
        return f"{output.DETAIL}{name}: no certificate yet (Caddy gets one on the first HTTPS request)"
    lines = []
    for path in found:
        cert = read(path)
        lines.append(f"{output.DETAIL}{name}: issuer {cert['issuer']}; names {cert['names']}; "
                     f"expires {cert['expires']}")
    return "\n".join(lines)
