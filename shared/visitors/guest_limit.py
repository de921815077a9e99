"""The guest-creation limit: at most GUEST_LIMIT_PER_HOUR new guests per client address per
rolling hour, counted by create_session's own statement (docs/design/client-address.md)."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from dataclasses import dataclass

from shared.core import config
from shared.web.auth import Caller, User

# The rolling window of the limit, and so the longest Retry-After: the one source of the
# statements' :window_seconds (create_session's and maintenance's).
WINDOW_SECONDS = 3600


def client_address(request) -> str:
    """The address of the client that sent `request`, as Google's front end saw it: the rightmost
    X-Forwarded-For entry where that front end wrote it, else the socket's peer; an IPv6 address as
    its /64 (docs/design/client-address.md)."""
    address = request.remote_addr or ""
    if config.x_forwarded_for_trusted():
        forwarded = request.headers.get("X-Forwarded-For", "")
        entries = [entry.strip() for entry in forwarded.split(",") if entry.strip()]
        address = entries[-1] if entries else address
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)  # an IPv4 address written as IPv6 is that address
        # One IPv6 client usually holds a whole /64 (the usual end-site prefix, RFC 6177), so an
        # address per request would cost it nothing: its /64 is what counts.
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def address_hash(address: str, key: bytes) -> bytes:
    return hmac.new(key, address.encode("utf-8"), hashlib.sha256).digest()


@dataclass(frozen=True)
class Window:
    """What create_session counts a new visitor against: `limit` new visitors per hour for
    the address whose HMAC is `address_hash` (limit 0: no limit, and no hash)."""

    limit: int
    address_hash: bytes | None = None

    def __repr__(self) -> str:  # never print the hash
        return f"Window(limit={self.limit})"

    @classmethod
    def off(cls) -> Window:
        return cls(0)

    @classmethod
    def of_request(cls, request, caller: Caller) -> Window:
        """The window of the request's client address, with the instance's settings; off
        for a signed-in (non-anonymous) user, whom the limit never counts."""
        if isinstance(caller, User) and not caller.anonymous:
            return cls.off()
        limit = config.guest_limit_per_hour()
        if limit == 0:
            return cls.off()
        return cls(limit, address_hash(client_address(request), config.guest_limit_key()))

    def params(self) -> dict:
        """The statement's parameters guest_limit, address_hash and window_seconds."""
        return {"guest_limit": self.limit, "address_hash": self.address_hash, "window_seconds": WINDOW_SECONDS}
