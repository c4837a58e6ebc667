"""The private-network guard (SPEC "Safety"): no private, loopback, link-local, multicast,
reserved or metadata address is fetched unless `allow_private_networks: true`, checked on the
address actually connected, every redirect hop included.

Two hooks of aiohttp's connector, both public API:
- `GuardedResolver` drops every resolved address that is not public; if none is left the name
  is refused. aiohttp connects only to the addresses its resolver returned (and caches that
  filtered list), so a name cannot rebind between the check and the connect;
- `guarded_socket_factory` sees the exact address of every connect attempt, literal IPs
  included (aiohttp skips the resolver for those), happy-eyeballs attempts and redirect hops
  included, and refuses before a socket exists.
`Blocked` is an OSError, so aiohttp treats it as a failed connect attempt; the fetcher finds
it in the cause of the error and reports FetchBlocked.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver


def address_allowed(ip: str) -> bool:
    """Public unicast only: no private, loopback, link-local, multicast, reserved, unspecified
    (IPv4-mapped IPv6 addresses are judged by the IPv4 address they carry)."""
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_global and not addr.is_multicast


class Blocked(OSError):
    """A disallowed address (an OSError, so that aiohttp handles it as a failed connect)."""


class GuardedResolver(AbstractResolver):
    def __init__(self, inner: AbstractResolver | None = None) -> None:
        self._inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        infos = await self._inner.resolve(host, port, family)
        allowed = [i for i in infos if address_allowed(i["host"])]
        if not allowed:
            first = infos[0]["host"] if infos else "nothing"
            raise Blocked(f"{host} resolves to a non-public address ({first})")
        return allowed

    async def close(self) -> None:
        await self._inner.close()


def guarded_socket_factory(addr_info: tuple[Any, ...]) -> socket.socket:
    family, type_, proto, _canonname, sockaddr = addr_info
    if not address_allowed(str(sockaddr[0])):
        raise Blocked(f"connecting to the non-public address {sockaddr[0]} refused")
    return socket.socket(family=family, type=type_, proto=proto)


def blocked_in(exc: BaseException | None) -> Blocked | None:
    """The Blocked behind an aiohttp error, if that is why it failed."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, Blocked):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None
