"""Ed25519 signatures on pushed records: what verifies, and every way a record is refused."""

from __future__ import annotations

import pytest

from radstream.domain.signatures import (
    KeyFileError,
    new_signing_key,
    parse_signing_key,
    parse_trusted_keys,
    rejection,
    sign,
    signing_payload,
)

LEAD = new_signing_key("lead")
MALLORY = new_signing_key("mallory")
TRUSTED = parse_trusted_keys(LEAD.public_line() + "\n")
THRESHOLDS = {"version": 3, "scope": "global", "reason": "ticket-1", "created_at": 1_700_000_000_000,
              "values": {"rule:nodule-detected/min_score": 0.5}}


def test_a_trusted_signature_verifies_and_names_the_author() -> None:
    record = sign("ThresholdSet", THRESHOLDS, LEAD)
    assert record["author"] == record["signer"] == "lead"
    assert rejection("ThresholdSet", record, TRUSTED) is None


@pytest.mark.parametrize("tamper, reason", [
    (lambda r: {**r, "signer": "", "signature": ""}, "unsigned"),
    (lambda r: {k: v for k, v in r.items() if k not in ("signer", "signature")}, "unsigned"),
    (lambda r: {**r, "values": {"rule:nodule-detected/min_score": 0.01}}, "bad signature"),
    (lambda r: {**r, "version": 4}, "bad signature"),
    (lambda r: {**r, "author": "someone-else"}, "is not the signer"),
    (lambda r: {**r, "signature": "not base64!"}, "bad signature"),
])
def test_unsigned_tampered_or_relabelled_records_are_refused(tamper, reason: str) -> None:
    assert reason in rejection("ThresholdSet", tamper(sign("ThresholdSet", THRESHOLDS, LEAD)), TRUSTED)


def test_an_unknown_key_and_an_empty_trust_list_are_refused() -> None:
    assert "unknown key 'mallory'" in rejection("ThresholdSet", sign("ThresholdSet", THRESHOLDS, MALLORY), TRUSTED)
    assert "unknown key" in rejection("ThresholdSet", sign("ThresholdSet", THRESHOLDS, LEAD), {})


def test_a_signature_is_bound_to_its_kind_and_ignores_later_fields() -> None:
    override = sign("FindingOverride", {"finding_id": "f1", "study_uid": "1.2", "verdict": "REJECTED",
                                        "reason": "", "created_at": 1}, LEAD)
    assert override["by"] == "lead" and rejection("FindingOverride", override, TRUSTED) is None
    assert signing_payload("FindingOverride", override).startswith(b"radstream.FindingOverride.v1\n")
    # a field a later schema adds (with its default) is outside what the signature covers
    assert rejection("FindingOverride", {**override, "added_later": "x", "schema_version": 2}, TRUSTED) is None


def test_key_files_round_trip_and_a_private_line_is_never_trusted() -> None:
    again = parse_signing_key(LEAD.private_line())
    assert again.public_line() == LEAD.public_line()
    with pytest.raises(KeyFileError, match="private key"):
        parse_trusted_keys(LEAD.private_line())
    with pytest.raises(KeyFileError, match="listed twice"):
        parse_trusted_keys(f"{LEAD.public_line()}\n{LEAD.public_line()}\n")
    with pytest.raises(KeyFileError, match="line 2.*32 bytes"):
        parse_trusted_keys("# comment\nlead AAAA\n")
    with pytest.raises(KeyFileError, match="key name"):
        new_signing_key("has space")
    with pytest.raises(KeyFileError, match="not a radstream private key"):
        parse_signing_key(LEAD.public_line())


def test_the_sites_column_says_which_sites_a_key_may_sign_arrivals_for() -> None:
    from radstream.domain.signatures import arrival_rejection, parse_key_sites

    pacs, ops, other = new_signing_key("pacs-a"), new_signing_key("ops"), new_signing_key("thresholds-lead")
    text = (f"{pacs.public_line()} SITE_A,SITE_C\n{ops.public_line()} *\n{other.public_line()}\n")
    trusted, sites = parse_trusted_keys(text), parse_key_sites(text)
    assert sites == {"pacs-a": frozenset({"SITE_A", "SITE_C"}), "ops": frozenset({"*"}), "thresholds-lead": frozenset()}
    arrival = {"idempotency_key": "k", "study_uid": "1.2", "series_uid": "1.2.3", "sop_uid": "1.2.3.4", "frame": 0,
               "site": "SITE_A", "expected_instances": 1, "arrived_at": 1,
               "blob": {"uri": "file:///b", "sha256": "0" * 64, "size_bytes": 1, "media_type": "application/dicom",
                        "shape": None, "dtype": None}}
    assert arrival_rejection(sign("DicomArrived", arrival, pacs), trusted, sites) is None
    assert arrival_rejection(sign("DicomArrived", arrival, ops), trusted, sites) is None  # `*`: any site
    assert "may not sign arrivals for site 'SITE_B'" in arrival_rejection(
        sign("DicomArrived", {**arrival, "site": "SITE_B"}, pacs), trusted, sites)
    assert "may not sign arrivals" in arrival_rejection(sign("DicomArrived", arrival, other), trusted, sites)
    moved = {**sign("DicomArrived", arrival, pacs), "site": "SITE_C"}  # relabelled after signing
    assert arrival_rejection(moved, trusted, sites).startswith("bad signature")
    assert arrival_rejection(arrival, trusted, sites) == "unsigned"
    for bad in (f"{pacs.public_line()} SITE A", f"{pacs.public_line()} ,", pacs.private_line()):
        with pytest.raises(KeyFileError):
            parse_key_sites(bad)


def test_a_delegate_key_signs_overrides_for_others_and_nothing_else() -> None:
    """D-042: the gateway's key, marked `delegate`, signs a verdict whose `by` is the person it
    authenticated; it can sign no threshold push, not even as itself."""
    from radstream.domain.signatures import DelegateKey, sign_for

    gateway = new_signing_key("gateway")
    trusted = parse_trusted_keys(LEAD.public_line() + "\n" + gateway.public_line(delegate=True) + "\n")
    assert isinstance(trusted["gateway"], DelegateKey) and not isinstance(trusted["lead"], DelegateKey)
    verdict = {"finding_id": "f1", "study_uid": "1.2", "verdict": "CONFIRMED", "reason": "", "created_at": 1}
    record = sign_for("FindingOverride", verdict, gateway, "dr-north@hospital")
    assert (record["by"], record["signer"]) == ("dr-north@hospital", "gateway")
    assert rejection("FindingOverride", record, trusted) is None
    assert "bad signature" in rejection("FindingOverride", {**record, "by": "dr-south"}, trusted)
    # a personal key still signs only as itself
    assert "is not the signer" in rejection("FindingOverride", {**sign("FindingOverride", verdict, LEAD),
                                                                 "by": "dr-north"}, trusted)
    assert "signs overrides only" in rejection("ThresholdSet", sign("ThresholdSet", THRESHOLDS, gateway), trusted)
    with pytest.raises(ValueError, match="never on someone's behalf"):
        sign_for("ThresholdSet", THRESHOLDS, gateway, "dr-north")
    for actor in ("", "two\nlines", "x" * 129):
        with pytest.raises(ValueError, match="printable"):
            sign_for("FindingOverride", verdict, gateway, actor)


@pytest.mark.parametrize("line, message", [
    ("gateway {key} delegate extra", r"expected `NAME BASE64PUBKEY \[SITES \| delegate\]`"),
    ("{private}", r"expected `NAME BASE64PUBKEY \[SITES \| delegate\]`"),
    ("gateway {key} delegate,SITE_A", "SITES must be"),  # a delegate signs no arrivals; `delegate` is no site
])
def test_a_delegate_line_is_the_word_alone_after_the_key(line: str, message: str) -> None:
    from radstream.domain.signatures import parse_key_sites

    gateway = new_signing_key("gateway")
    text = line.format(key=gateway.public_line().split()[1], private=gateway.private_line())
    with pytest.raises(KeyFileError, match=message):
        parse_trusted_keys(text)
    # and a delegate key may sign arrivals for no site
    assert parse_key_sites(gateway.public_line(delegate=True)) == {"gateway": frozenset()}
