"""The peers table: who is admitted, under which site, and the A-ASSOCIATE-RJ fields for the rest."""

from __future__ import annotations

import pytest

from radstream.domain.dicom.peers import (
    CALLED_AE_NOT_RECOGNIZED,
    CALLING_AE_NOT_RECOGNIZED,
    Peer,
    PeerTable,
    Refusal,
    parse_peers,
)

TABLE = parse_peers("""
# AE_TITLE SITE [CIDR]
PACS_A   SITE_A  10.1.0.0/16
PACS_A   SITE_A2 192.168.5.7
ROAMING  SITE_R            # any address
""")


def test_the_site_comes_from_the_matching_line() -> None:
    assert TABLE.admit("PACS_A", "RADSTREAM", "RADSTREAM", "10.1.2.3") == Peer("PACS_A", "SITE_A", TABLE.peers[0].network)
    assert TABLE.admit("PACS_A  ", "RADSTREAM ", "RADSTREAM", "192.168.5.7").site == "SITE_A2"
    assert TABLE.admit("ROAMING", "RADSTREAM", "RADSTREAM", "203.0.113.9").site == "SITE_R"
    assert TABLE.admit("PACS_A", "RADSTREAM", "RADSTREAM", "::ffff:10.1.9.9").site == "SITE_A"  # dual-stack


@pytest.mark.parametrize(("calling", "called", "address", "reason"), [
    ("ROGUE", "RADSTREAM", "10.1.2.3", CALLING_AE_NOT_RECOGNIZED),
    ("PACS_A", "RADSTREAM", "10.2.0.1", CALLING_AE_NOT_RECOGNIZED),  # known title, foreign network
    ("PACS_A", "OTHER", "10.1.2.3", CALLED_AE_NOT_RECOGNIZED),
])
def test_everything_else_is_refused_permanently_by_the_service_user(calling, called, address, reason) -> None:
    refusal = TABLE.admit(calling, called, "RADSTREAM", address)
    assert isinstance(refusal, Refusal)
    assert (refusal.result, refusal.source, refusal.reason) == (0x01, 0x01, reason)


def test_any_peer_is_the_demo_mode_and_still_checks_the_called_title() -> None:
    demo = PeerTable(any_peer=True)
    assert demo.admit("WHOEVER", "RADSTREAM", "RADSTREAM", "1.2.3.4").site == "WHOEVER"
    assert isinstance(demo.admit("WHOEVER", "X", "RADSTREAM", "1.2.3.4"), Refusal)


@pytest.mark.parametrize(("text", "message"), [
    ("", "no peers"),
    ("PACS", "line 1: expected `AE_TITLE SITE [CIDR]`"),
    ("PACS SITE 10.0.0.0/8 extra", "line 1: expected"),
    ("A_TITLE_LONGER_THAN_16 SITE", "line 1: AE title must be"),
    ("PACS SITE not-a-network", "line 1: 'not-a-network' is not an address"),
])
def test_a_malformed_file_names_its_line(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_peers(text)
