"""The guest-creation limit (SPEC §12): at most GUEST_LIMIT_PER_HOUR new guests per
client address per rolling hour, on every instance.

A new guest is a guest key never seen before, or a Firebase anonymous account's first
session: both take a visitor number for ever, and both cost an attacker nothing to
make. Returning guests, later sessions and registered (signed-in) users are never
limited. The count lives in PostgreSQL (sql/006_guest_limits.sql) and is taken by
create_session's own statement before `nextval`, so a refused request takes no
number and two instances cannot both let the limit's last guest through.

The address is the one Google's front end saw (client_address); the database only
ever holds its HMAC-SHA256 under GUEST_LIMIT_KEY, and only for the hour it matters.
"""

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
    """The address of the client that sent `request`, as Google's front end saw it
    (docs/design/client-address.md says why this entry).

    Google's front end appends the address of the peer it accepted the connection from to
    X-Forwarded-For, after whatever the client sent there ("X-Forwarded-For:
    <supplied-value>,<client-ip>,<load-balancer-ip>", the last one only behind a load balancer of
    one's own: External Application Load Balancer overview, X-Forwarded-For header,
    https://cloud.google.com/load-balancing/docs/https#x-forwarded-for_header). A function's own URL
    has no forwarding rule of ours, so the rightmost entry is the one a client cannot choose; every
    entry left of it may be forged. That holds only where that front end wrote the header
    (config.x_forwarded_for_trusted: deployed, or tests standing in for it): served with no front
    end (`make dev`, the tests' stack) every entry is the client's own, and several header lines,
    which the server joins in order, put whichever the client likes rightmost. There the address is
    the socket's peer, the one the front end would have appended. An IPv6 address counts as its /64.
    An entry that is not an IP address is used as it is: it cannot be forged either, it only groups
    oddly.
    """
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
    def off(cls) -> "Window":
        return cls(0)

    @classmethod
    def of_request(cls, request, caller: Caller) -> "Window":
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
