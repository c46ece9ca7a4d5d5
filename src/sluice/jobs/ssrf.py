"""Webhook targets that cannot be turned against the gateway's own network (SSRF).

A webhook URL is the caller's input, and the gateway usually sits inside a private
network next to databases, admin ports and the cloud metadata service. So:

- `check_url` (at submission, and again before every delivery): http(s) only, a host;
  a literal address is judged as it is, a name is resolved and *every* address judged;
- `SafeResolver` (aiohttp's resolver for deliveries): the same judgement on the addresses
  the connection will actually use, so a name that resolved to a public address at
  submission and to 127.0.0.1 now (DNS rebinding) is refused at connect time;
- deliveries never follow redirects (a 3xx is a failed attempt).

Refused: private (RFC 1918, ULA), loopback, link-local (169.254.169.254 metadata
included), carrier-grade NAT (100.64/10), multicast, reserved, unspecified, and IPv4
addresses hidden in IPv6 (::ffff:127.0.0.1, 6to4 / NAT64 embeddings are judged as IPv4).
Allowed anyway: everything when `allow_private`; a host name listed in `allowlist`; an
address inside a network listed there.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from yarl import URL

from sluice.jobs.config import JobWebhooksConfig

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
MAX_URL_CHARS = 2048


class WebhookRefused(OSError):
    """The target may not receive webhooks; the message says why (no secrets in it)."""


class Policy:
    def __init__(self, config: JobWebhooksConfig) -> None:
        self.allow_private = config.allow_private
        self.hosts = {h.lower().rstrip(".") for h in config.allowlist if not _is_network(h)}
        self.networks: list[Network] = [
            ipaddress.ip_network(h, strict=False) for h in config.allowlist if _is_network(h)
        ]

    def judge(self, host: str, address: str) -> None:
        """Raise WebhookRefused when `address` (of `host`) is not a public target."""
        if self.allow_private or host.lower().rstrip(".") in self.hosts:
            return
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if any(ip in net for net in self.networks if net.version == ip.version):
            return
        inner = _embedded_v4(ip)
        for candidate in (ip, inner) if inner is not None else (ip,):
            if _internal(candidate):
                raise WebhookRefused(
                    f"webhook host {host[:100]} resolves to a private, loopback or link-local "
                    "address; such targets are refused (jobs.webhooks.allow_private / allowlist)"
                )


def _is_network(entry: str) -> bool:
    try:
        ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return False
    return True


def _embedded_v4(ip: Address) -> ipaddress.IPv4Address | None:
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip.sixtofour is not None:
            return ip.sixtofour
        if ip in _NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _internal(ip: Address) -> bool:
    return (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or (isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT)
    )


def _literal(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


async def check_url(url: str, policy: Policy) -> URL:
    """The parsed URL when it is an acceptable webhook target; WebhookRefused otherwise
    (also for names that do not resolve: nothing could be delivered)."""
    if len(url) > MAX_URL_CHARS:
        raise WebhookRefused("webhook_url is too long")
    try:
        parsed = URL(url)
    except (ValueError, TypeError):
        raise WebhookRefused("webhook_url is not a URL") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise WebhookRefused("webhook_url must be an http:// or https:// URL with a host")
    host = parsed.host
    literal = _literal(host)
    if literal is not None:
        policy.judge(host, literal)
        return parsed
    if host.replace(".", "").isdigit():  # 2130706433, 127.1: numeric forms of addresses
        raise WebhookRefused("webhook_url host must be a name or a canonical address")
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, parsed.port or 443, type=socket.SOCK_STREAM
        )
    except (socket.gaierror, UnicodeError):
        raise WebhookRefused(f"webhook host {host[:100]} does not resolve") from None
    for info in infos:
        policy.judge(host, str(info[4][0]))
    return parsed


class SafeResolver(AbstractResolver):
    """aiohttp's threaded resolver, refusing internal addresses (see the module)."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._inner = ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            self.policy.judge(host, result["host"])
        return results

    async def close(self) -> None:
        await self._inner.close()


def refusal_reason(exc: BaseException) -> str | None:
    """The WebhookRefused message inside an aiohttp connection error, if that was it."""
    seen: Sequence[BaseException | None] = (exc, exc.__cause__, exc.__context__)
    for e in seen:
        if isinstance(e, WebhookRefused):
            return str(e)
        inner = getattr(e, "os_error", None)
        if isinstance(inner, WebhookRefused):
            return str(inner)
    return None
