"""Threshold documents: validation, precedence, rejection of bad records, and the one-reader rule."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from radstream.services.thresholds import parse_document, show
from radstream.domain.thresholds import ThresholdBook, ThresholdError, effective, validate_document

ROOT = Path(__file__).resolve().parents[3]


def rec(version: int, scope: str, **values: float) -> dict:
    return {"version": version, "scope": scope, "author": "lead", "reason": "tune", "created_at": 0,
            "values": {k.replace("__", "/").replace("_", "-"): v for k, v in values.items()}}


def test_more_specific_scopes_win_and_site_applies_only_to_its_site() -> None:
    records = {
        "global": {"version": 1, "scope": "global", "values": {"rule:a/min": 0.5, "rule:b/min": 0.5}},
        "rule:a": {"version": 2, "scope": "rule:a", "values": {"rule:a/min": 0.7}},
        "site:X": {"version": 3, "scope": "site:X", "values": {"rule:b/min": 0.9}},
    }
    assert effective(records).values == {"rule:a/min": 0.7, "rule:b/min": 0.5}
    assert effective(records).version == 2
    at_x = effective(records, site="X")
    assert at_x.values == {"rule:a/min": 0.7, "rule:b/min": 0.9} and at_x.version == 3


@pytest.mark.parametrize("scope,values,message", [
    ("everything", {}, "invalid scope"),
    ("global", {"nodule": 0.5}, "invalid threshold key"),
    ("rule:a", {"rule:b/min": 0.5}, "belongs to another scope"),
    ("global", {"rule:a/min": 1.5}, "out of range"),
    ("global", {"rule:a/min": float("nan")}, "out of range"),
    ("global", {"rule:a/min": "high"}, "out of range"),
    ("global", {"rule:zzz/min": 0.5}, "unknown threshold"),
])
def test_invalid_documents_are_refused_with_a_reason(scope, values, message) -> None:
    with pytest.raises(ThresholdError, match=message):
        validate_document(scope, values, known_keys={"rule:a/min", "rule:b/min"})


def test_a_bad_record_is_rejected_and_the_last_good_version_stays() -> None:
    book = ThresholdBook()
    assert book.apply({"version": 1, "scope": "global", "author": "a", "reason": "r", "created_at": 0,
                       "values": {"rule:a/min": 0.6}})
    assert not book.apply({"version": 2, "scope": "global", "author": "a", "reason": "r", "created_at": 0,
                           "values": {"rule:a/min": 7.0}})
    assert not book.apply({"version": 1, "scope": "global", "author": "a", "reason": "replay", "created_at": 0,
                           "values": {"rule:a/min": 0.1}})
    assert book.effective().values == {"rule:a/min": 0.6} and book.version == 1
    assert book.rejections == 2 and "not newer" in book.last_error


def test_show_output_parses_back_as_a_push_document() -> None:
    book = ThresholdBook()
    book.apply({"version": 4, "scope": "rule:a", "author": "a", "reason": "r", "created_at": 0,
                "values": {"rule:a/min": 0.25}})
    for eff in (False, True):
        docs = parse_document(show(book, effective=eff))
        assert docs[0]["values"] == {"rule:a/min": 0.25}
    with pytest.raises(ThresholdError, match="needs `scope`"):
        parse_document("- 1\n- 2\n")


def test_only_the_config_module_reads_thresholds() -> None:
    """The trap this prevents: a module quietly reading thresholds from its own file or topic."""
    allowed = {"streams/config.py", "services/thresholds.py", "streams/kafka/topics.py",
               # writes a threshold file for `radstream thresholds push`; reads none
               "services/commands/evaluate.py"}
    pattern = re.compile(r"CONFIG_THRESHOLDS|CONFIG_AUDIT|config\.thresholds|thresholds?\.(ya?ml|json)")
    offenders = []
    for folder in ("streams", "services", "models", "evaluation"):
        for path in (ROOT / folder).rglob("*.py"):
            rel = path.relative_to(ROOT).as_posix()
            if rel not in allowed and pattern.search(path.read_text()):
                offenders.append(rel)
    assert offenders == []
    # Manifest default thresholds enter the rules in exactly one place.
    readers = [p.relative_to(ROOT).as_posix() for folder in ("streams", "services")
               for p in (ROOT / folder).rglob("*.py") if "default_thresholds" in p.read_text()]
    assert readers == ["streams/stages/registry.py"]


def test_trusted_keys_fall_back_to_the_dev_file_only_outside_prod(tmp_path) -> None:
    """Unset RADSTREAM_TRUSTED_KEYS: the file `radstream up` writes under home, else nobody is
    trusted; with RADSTREAM_ENV=prod it is an error, and the dev key is never the signing default."""
    from radstream.domain.signatures import KeyFileError
    from radstream.services.signing import ensure_dev_keys
    from radstream.streams.config import Config

    env = {"RADSTREAM_HOME": str(tmp_path / "home")}
    assert Config.from_env(env=env).trusted_keys() == {}
    ensure_dev_keys(tmp_path / "home")
    trusted = Config.from_env(env=env).trusted_keys()
    assert set(trusted) == {"dev", "gateway"}  # and the dev gateway's key, as a delegate (D-042)
    assert type(trusted["gateway"]).__name__ == "DelegateKey" and type(trusted["dev"]).__name__ != "DelegateKey"
    assert Config.from_env(env=env).signing_key_path() == tmp_path / "home" / "keys" / "dev.key"
    prod_env = {**env, "RADSTREAM_ENV": "prod", "RADSTREAM_KAFKA_SECURITY_PROTOCOL": "SSL"}  # prod refuses PLAINTEXT
    prod = Config.from_env(env=prod_env)
    with pytest.raises(KeyFileError, match="RADSTREAM_ENV=prod needs RADSTREAM_TRUSTED_KEYS"):
        prod.trusted_keys()
    assert prod.signing_key_path() is None
    (tmp_path / "t").write_text((tmp_path / "home" / "keys" / "dev.pub").read_text().replace("dev ", "ops "))
    assert set(Config.from_env(env={**prod_env, "RADSTREAM_TRUSTED_KEYS": str(tmp_path / "t")})
               .trusted_keys()) == {"ops"}
