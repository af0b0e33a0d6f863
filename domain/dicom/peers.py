"""Which DICOM senders the receiver accepts, and under which site (pure: no sockets here).

A peers file has one line per peer, `AE_TITLE SITE [CIDR]`, `#` starting a comment.
The site recorded on every instance a peer sends comes from this table, never from
the data: the calling AE title only selects the line, and the line only matches when
the connection comes from inside its CIDR (any address when the line has none). The
same AE title may appear on several lines with different networks; the first line that
matches wins.

An association that matches no line is refused with A-ASSOCIATE-RJ (PS3.8 9.3.4):
result "rejected-permanent", source "DICOM UL service-user", reason "calling-AE-title-
not-recognized"; a called AE title that is not ours gets reason "called-AE-title-not-
recognized". The reasons never say which check failed beyond that, so a prober learns
nothing about the table.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

# A-ASSOCIATE-RJ fields (PS3.8 Table 9-21)
REJECTED_PERMANENT = 0x01
SOURCE_SERVICE_USER = 0x01
CALLING_AE_NOT_RECOGNIZED = 0x03
CALLED_AE_NOT_RECOGNIZED = 0x07

AE_TITLE_MAX = 16
SITE_MAX = 64

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Peer:
    """One line of the peers file."""

    ae_title: str
    site: str
    network: Network | None = None  # None: any address

    def admits(self, address: str) -> bool:
        if self.network is None:
            return True
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # ::ffff:10.0.0.5 on a dual-stack socket is 10.0.0.5
        return ip.version == self.network.version and ip in self.network


@dataclass(frozen=True)
class Refusal:
    """Why an association is refused: the A-ASSOCIATE-RJ fields and a line for the log."""

    result: int
    source: int
    reason: int
    message: str


@dataclass(frozen=True)
class PeerTable:
    """The configured peers; `any_peer` (the embedded demo only) admits every calling AE under its own title."""

    peers: tuple[Peer, ...] = ()
    any_peer: bool = False

    def admit(self, calling_ae: str, called_ae: str, our_ae: str, address: str) -> Peer | Refusal:
        """The peer an association is from, or why it is refused."""
        calling, called = calling_ae.strip(), called_ae.strip()
        if called != our_ae.strip():
            return Refusal(REJECTED_PERMANENT, SOURCE_SERVICE_USER, CALLED_AE_NOT_RECOGNIZED,
                           f"called AE title {called!r} is not {our_ae.strip()!r}")
        if self.any_peer:
            return Peer(calling, calling)
        for peer in self.peers:
            if peer.ae_title == calling and peer.admits(address):
                return peer
        known = any(p.ae_title == calling for p in self.peers)
        why = f"{address} is outside its network" if known else "not in the peers file"
        return Refusal(REJECTED_PERMANENT, SOURCE_SERVICE_USER, CALLING_AE_NOT_RECOGNIZED,
                       f"calling AE title {calling!r} from {address}: {why}")


def parse_peers(text: str, source: str = "peers file") -> PeerTable:
    """The table from a peers file's text; ValueError naming the line when one is malformed."""
    peers: list[Peer] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        where = f"{source} line {number}"
        if len(fields) not in (2, 3):
            raise ValueError(f"{where}: expected `AE_TITLE SITE [CIDR]`, got {len(fields)} field(s)")
        ae_title, site = fields[0], fields[1]
        if len(ae_title) > AE_TITLE_MAX or not ae_title.isascii() or "\\" in ae_title:
            raise ValueError(f"{where}: AE title must be 1 to {AE_TITLE_MAX} ASCII characters without a backslash")
        if len(site) > SITE_MAX or not site.isascii():
            raise ValueError(f"{where}: site must be 1 to {SITE_MAX} ASCII characters")
        network = None
        if len(fields) == 3:
            try:
                network = ipaddress.ip_network(fields[2], strict=False)
            except ValueError:
                raise ValueError(f"{where}: {fields[2]!r} is not an address or a CIDR network") from None
        peers.append(Peer(ae_title, site, network))
    if not peers:
        raise ValueError(f"{source}: no peers (one `AE_TITLE SITE [CIDR]` per line)")
    return PeerTable(tuple(peers))

