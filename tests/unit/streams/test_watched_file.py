"""A watched configuration file is re-read when it changes, keeps its last good version on a bad
edit, and is checked at most every RECHECK_S seconds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from radstream.domain.dicom.peers import parse_peers
from radstream.services.receiver import LivePeerTable
from radstream.streams.watched_file import LiveMapping, WatchedFile


def _pairs(text: str) -> dict[str, str]:
    rows = [line.split() for line in text.splitlines() if line.strip()]
    if any(len(r) != 2 for r in rows):
        raise ValueError("expected NAME VALUE")
    return dict(rows)


def test_a_change_is_taken_a_broken_one_is_not_and_checks_are_rate_limited(tmp_path: Path, caplog) -> None:
    now = [0.0]
    path = tmp_path / "f"
    path.write_text("alice A\nbob B\n")
    live = LiveMapping(WatchedFile(path, _pairs, every_s=2.0, clock=lambda: now[0]))
    assert dict(live) == {"alice": "A", "bob": "B"} and live.generation == 0
    (tmp_path / "new").write_text("bob B\n")
    os.replace(tmp_path / "new", path)  # a ConfigMap update: a rename
    now[0] = 1.0
    assert "alice" in live  # not looked at yet: at most one stat per 2 s
    now[0] = 2.5
    assert "alice" not in live and live.generation == 1
    path.write_text("bob B C\n")
    now[0] = 5.0
    assert dict(live) == {"bob": "B"} and live.watched.errors == 1  # the broken edit is not taken
    assert "changed but cannot be used, keeping the previous version" in caplog.text
    path.unlink()
    now[0] = 8.0
    assert dict(live) == {"bob": "B"}  # a vanished file keeps the last version too


def test_a_bad_file_at_start_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("one two three\n")
    with pytest.raises(ValueError):
        WatchedFile(tmp_path / "f", _pairs)


def test_the_live_peer_table_admits_what_the_file_says_now(tmp_path: Path) -> None:
    now = [0.0]
    path = tmp_path / "peers"
    path.write_text("PACS SITE_A 127.0.0.0/8\n")
    table = LivePeerTable(WatchedFile(path, parse_peers, every_s=1.0, clock=lambda: now[0]))
    assert table.admit("PACS", "RS", "RS", "127.0.0.1").site == "SITE_A"
    path.write_text("OTHER SITE_B\n")
    now[0] = 2.0
    assert not hasattr(table.admit("PACS", "RS", "RS", "127.0.0.1"), "site")  # a Refusal now
    assert table.admit("OTHER", "RS", "RS", "10.1.2.3").site == "SITE_B"
