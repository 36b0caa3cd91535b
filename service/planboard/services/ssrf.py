"""The SSRF guard of webhook targets: which URLs and addresses Planboard may call.

Webhook URLs are chosen by workspace admins, so without a guard a webhook would
let any admin make the worker call internal services (cloud metadata on
169.254.169.254, databases on private addresses, the API itself on loopback).

- ``parse_target`` checks the URL's syntax: http(s) only, a host, no credentials,
  no fragment, a bounded length, canonical numeric hosts only.
- ``refusal`` classifies one IP address. Loopback, private (RFC 1918, ULA
  ``fc00::/7``), link-local (``169.254/16`` incl. cloud metadata, ``fe80::/10``),
  CGNAT (``100.64/10``), site-local and every other non-globally-routable range are
  refused unless ``allow_private`` is set (``PLANBOARD_ALLOW_PRIVATE_WEBHOOKS``, for
  development); unspecified, multicast and broadcast addresses are always refused.
  IPv6 forms that embed an IPv4 address (IPv4-mapped ``::ffff:a.b.c.d``, 6to4,
  Teredo, NAT64) are judged by the embedded address.
- ``resolve_checked`` resolves a host name and refuses it when **any** of its
  addresses is refused; the delivery worker connects only to the addresses it
  returns (no second lookup, so no DNS rebinding between check and connect).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL_LENGTH = 2048
SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}

# Never a valid target, whatever the settings say.
_ALWAYS_REFUSED: tuple[tuple[str, ipaddress.IPv4Network | ipaddress.IPv6Network], ...] = (
    ("unspecified", ipaddress.ip_network("0.0.0.0/8")),
    ("unspecified", ipaddress.ip_network("::/128")),
    ("multicast", ipaddress.ip_network("224.0.0.0/4")),
    ("multicast", ipaddress.ip_network("ff00::/8")),
    ("broadcast", ipaddress.ip_network("255.255.255.255/32")),
)
# Internal networks: refused unless private targets are allowed.
_PRIVATE: tuple[tuple[str, ipaddress.IPv4Network | ipaddress.IPv6Network], ...] = (
    ("loopback", ipaddress.ip_network("127.0.0.0/8")),
    ("loopback", ipaddress.ip_network("::1/128")),
    ("private", ipaddress.ip_network("10.0.0.0/8")),
    ("private", ipaddress.ip_network("172.16.0.0/12")),
    ("private", ipaddress.ip_network("192.168.0.0/16")),
    ("private", ipaddress.ip_network("fc00::/7")),
    ("link-local", ipaddress.ip_network("169.254.0.0/16")),
    ("link-local", ipaddress.ip_network("fe80::/10")),
    ("shared (CGNAT)", ipaddress.ip_network("100.64.0.0/10")),
    ("site-local", ipaddress.ip_network("fec0::/10")),
)
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$", re.IGNORECASE)
_HOST_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")


class TargetRefused(OSError):
    """The target is not allowed (also raised from the HTTP client's resolver)."""


@dataclass(frozen=True, slots=True)
class Target:
    url: str  # normalized: lower-case scheme and host, no fragment
    scheme: str
    host: str  # ASCII (IDNA) host name, or an IP address without brackets
    port: int
    address: IPAddress | None  # the host when it is an IP literal


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if any(address in net for net in _NAT64):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def refusal(address: IPAddress, *, allow_private: bool) -> str | None:
    """Why ``address`` may not be called (a short reason), or None when it may."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            reason = refusal(embedded, allow_private=allow_private)
            return f"{reason} (embedded in {address})" if reason else None
    for reason, net in _ALWAYS_REFUSED:
        if address.version == net.version and address in net:
            return f"{reason} address {address}"
    if allow_private:
        return None
    for reason, net in _PRIVATE:
        if address.version == net.version and address in net:
            return f"{reason} address {address}"
    if not address.is_global:
        return f"non-public address {address}"
    return None


def _split(url: str) -> SplitResult:
    if len(url) > MAX_URL_LENGTH:
        raise ValueError(f"must be at most {MAX_URL_LENGTH} characters")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 or c == "\\" for c in url):
        raise ValueError("must not contain spaces, control characters or backslashes")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ValueError("is not a valid URL") from None
    return parts


def parse_target(url: str) -> Target:
    """Check a webhook URL's syntax; ValueError says what is wrong (for a 422)."""
    parts = _split(url)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise ValueError("must be an http or https URL")
    if not parts.netloc or not parts.hostname:
        raise ValueError("must name a host")
    if "@" in parts.netloc:
        raise ValueError("must not contain credentials (user:password@)")
    if parts.fragment or url.endswith("#"):
        raise ValueError("must not contain a fragment (#...)")
    port = parts.port if parts.port is not None else DEFAULT_PORTS[scheme]
    if not 1 <= port <= 65535:
        raise ValueError("has an invalid port")
    raw_host = parts.hostname.rstrip(".")  # lower-cased, brackets removed
    address: IPAddress | None = None
    try:
        address = ipaddress.ip_address(raw_host)
    except ValueError:
        if ":" in raw_host or _NUMERIC_LABEL.match(raw_host.rsplit(".", 1)[-1]):
            # 2130706433, 127.1, 0x7f.1: forms some resolvers map onto an address
            raise ValueError("a numeric host must be a dotted-quad IPv4 address") from None
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        raise ValueError("must not use an IPv6 zone index")
    if address is None:
        try:
            host = raw_host.encode("idna").decode("ascii")
        except UnicodeError:
            raise ValueError("has an invalid host name") from None
        labels = host.split(".")
        if len(host) > 253 or not all(_HOST_LABEL.match(label) for label in labels):
            raise ValueError("has an invalid host name")
    else:
        host = str(address)
    netloc = f"[{host}]" if isinstance(address, ipaddress.IPv6Address) else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    normalized = f"{scheme}://{netloc}{parts.path or '/'}"
    if parts.query:
        normalized += f"?{parts.query}"
    return Target(url=normalized, scheme=scheme, host=host, port=port, address=address)


def _is_localhost(host: str) -> bool:
    return host == "localhost" or host.endswith(".localhost")


def check_literal(target: Target, *, allow_private: bool) -> None:
    """Refuse an IP-literal or ``localhost`` target without any DNS lookup."""
    if target.address is not None:
        reason = refusal(target.address, allow_private=allow_private)
        if reason:
            raise TargetRefused(f"refused: {reason}")
    elif _is_localhost(target.host) and not allow_private:
        raise TargetRefused("refused: localhost")


async def resolve_checked(
    host: str, port: int, *, allow_private: bool, family: int = socket.AF_UNSPEC
) -> list[tuple[socket.AddressFamily, IPAddress]]:
    """Resolve ``host``; TargetRefused when any address is refused or none is found."""
    if _is_localhost(host) and not allow_private:
        raise TargetRefused("refused: localhost")
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, family=family, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise TargetRefused(f"could not resolve {host}: {exc.strerror}") from None
    found: list[tuple[socket.AddressFamily, IPAddress]] = []
    for info_family, _, _, _, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        reason = refusal(address, allow_private=allow_private)
        if reason:
            raise TargetRefused(f"refused: {host} resolves to a {reason}")
        if (info_family, address) not in found:
            found.append((info_family, address))
    if not found:
        raise TargetRefused(f"could not resolve {host}")
    return found


async def validate_target(url: str, *, allow_private: bool, resolve_timeout_s: float) -> Target:
    """Create-time check: syntax, literal addresses, and what the host resolves to now.

    A host that does not resolve (yet) is accepted: its deliveries fail and are
    retried, and the worker checks the addresses again at every delivery.
    """
    target = parse_target(url)
    check_literal(target, allow_private=allow_private)
    if target.address is None:
        try:
            await asyncio.wait_for(
                resolve_checked(target.host, target.port, allow_private=allow_private),
                resolve_timeout_s,
            )
        except TargetRefused as exc:
            if str(exc).startswith("refused"):
                raise
        except TimeoutError:
            pass
    return target
