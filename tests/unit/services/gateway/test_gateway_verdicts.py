"""Overrides from the viewer (D-042): `POST /studies/{uid}/findings/{id}/override` checks who, where and
what before anything is written, and the gateway's delegate key signs for the authenticated identity.

The writer here is the real OverrideWriter (librdkafka) pointed at a closed port: every refusal
below must come before it (nothing written), and the last test shows a bus that does not
acknowledge gives a one-line 503. The happy path, through a real broker and the browser, is
tests/e2e/test_viewer_review.py."""

from __future__ import annotations

import argparse
import asyncio

import aiohttp
import pytest
from gateway_harness import ingest, make_gateway, serve
from gateway_records import STUDY, finding_id, fused_box, study_result
from radstream.domain.signatures import new_signing_key, parse_trusted_keys, rejection
from radstream.services.broker import free_port
from radstream.services.commands.errors import CliError
from radstream.services.commands.gateway import _override_writer
from radstream.services.gateway.verdicts import MAX_BODY_BYTES, OverrideWriter, VerdictError, parse_verdict
from radstream.services.overrides import REJECTION_REASONS, override_view
from radstream.services.signing import ensure_dev_keys, gateway_signing_key, write_key_pair
from radstream.streams.config import Config
from radstream.streams.kafka.settings import KafkaSettings

BOX = fused_box([10, 20, 60, 80])
FID = finding_id(BOX)
KEY = new_signing_key("gateway-test")
URL = f"/studies/{STUDY}/findings/{FID}/override"
A = {"Authorization": "Bearer tok-a"}


def _gateway(writer: bool = True):
    gw = make_gateway()
    if writer:  # a real producer towards a port nobody listens on: a write would fail, never succeed
        gw.writer = OverrideWriter(KafkaSettings(bootstrap=f"127.0.0.1:{free_port()}"), KEY, flush_timeout_s=1.0)
    ingest(gw, "StudyResult", study_result(boxes=[BOX]))
    return gw


async def _post(session: aiohttp.ClientSession, url: str, **kwargs) -> tuple[int, dict]:
    async with session.post(url, **kwargs) as resp:
        return resp.status, await resp.json()


@pytest.mark.parametrize("body, message", [
    (b"not json", "the body must be a JSON object"),
    (b"[1]", "the body must be a JSON object"),
    (b'{"verdict": "maybe"}', "verdict must be one of confirmed, rejected"),
    (b'{"verdict": "rejected"}', "a rejection needs a reason, one of: artefact"),
    (b'{"verdict": "rejected", "reason": "I just do not like it"}', "a rejection needs a reason"),
    (b'{"verdict": "rejected", "reason": "other"}', "reason `other` needs a note"),
    (b'{"verdict": "confirmed", "reason": "artefact"}', "a confirmation takes no reason"),
    (b'{"verdict": "confirmed", "by": "dr-someone-else"}', "unknown field(s): by"),
    (b'{"verdict": "rejected", "reason": "artefact", "note": "two\\nlines"}', "at most 500 characters on one line"),
    (b'{"verdict": "rejected", "reason": "artefact", "note": 5}', "reason and note must be strings"),
])
def test_a_bad_verdict_is_a_one_line_400(body: bytes, message: str) -> None:
    with pytest.raises(VerdictError) as caught:
        parse_verdict(body)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_verdict_becomes_the_records_reason() -> None:
    assert parse_verdict(b'{"verdict": "confirmed"}').reason == ""
    assert parse_verdict(b'{"verdict": "confirmed", "note": " seen on the CT "}').reason == "seen on the CT"
    assert parse_verdict(b'{"verdict": "rejected", "reason": "artefact"}').reason == "artefact"
    assert parse_verdict(b'{"verdict": "rejected", "reason": "other", "note": "rib"}').reason == "other: rib"
    assert REJECTION_REASONS[-1] == "other"


def test_the_endpoint_refuses_before_writing_anything() -> None:
    async def scenario() -> None:
        gw = _gateway()
        async with serve(gw) as base, aiohttp.ClientSession() as session:
            ok = {"json": {"verdict": "confirmed"}}
            # a write takes the token from the header only, never from the URL
            status, body = await _post(session, f"{base}{URL}?access_token=tok-a", **ok)
            assert status == 401 and body["error"] == "a verdict needs the Authorization header"
            assert (await _post(session, base + URL, headers={"Authorization": "Bearer nope"}, **ok))[0] == 401
            # nor from a ticket (D-039): tickets are for the GETs of EventSource and images
            async with session.post(f"{base}/session/ticket", headers=A) as resp:
                ticket = (await resp.json())["ticket"]
            status, body = await _post(session, f"{base}{URL}?ticket={ticket}", **ok)
            assert status == 401 and body["error"] == "a verdict needs the Authorization header"
            # another site's study: the same 404 as a study that does not exist
            other = await _post(session, base + URL, headers={"Authorization": "Bearer tok-b"}, **ok)
            missing = await _post(session, f"{base}/studies/1.2.3/findings/{FID}/override", headers=A, **ok)
            assert other[0] == missing[0] == 404
            assert other[1]["error"].replace(STUDY, "X") == missing[1]["error"].replace("1.2.3", "X")
            status, body = await _post(session, f"{base}/studies/{STUDY}/findings/nope/override", headers=A, **ok)
            assert status == 404 and "has no finding nope" in body["error"]
            status, body = await _post(session, base + URL, headers=A, data=b"verdict=confirmed")
            assert status == 400 and body["error"] == "the body must be application/json"
            big = b'{"verdict": "confirmed", "note": "' + b"x" * MAX_BODY_BYTES + b'"}'
            status, body = await _post(session, base + URL, headers={**A, "Content-Type": "application/json"}, data=big)
            assert status == 413 and body["error"] == f"the body is over {MAX_BODY_BYTES} bytes"
            status, body = await _post(session, base + URL, headers=A, json={"verdict": "rejected"})
            assert status == 400 and body["error"].startswith("a rejection needs a reason")
            assert gw.writer.written == 0
            # the writer is reached only by a complete, valid verdict; this bus never acknowledges
            status, body = await _post(session, base + URL, headers=A, json={"verdict": "confirmed"})
            assert status == 503 and body["error"].startswith("the verdict was not written")
            assert gw.writer.written == 0

    asyncio.run(scenario())


def test_without_a_signing_key_overrides_are_off_and_me_says_so() -> None:
    async def scenario() -> None:
        gw = _gateway(writer=False)
        async with serve(gw) as base, aiohttp.ClientSession(headers=A) as session:
            async with session.get(f"{base}/me") as resp:
                assert await resp.json() == {"identity": "token:" + resp_identity(), "sites": ["SITE_A"],
                                             "overrides": False, "rejection_reasons": list(REJECTION_REASONS)}
            status, body = await _post(session, base + URL, json={"verdict": "confirmed"})
            assert status == 503 and "no signing key" in body["error"]

    asyncio.run(scenario())


def resp_identity() -> str:
    import hashlib

    return hashlib.sha256(b"tok-a").hexdigest()[:12]


def test_the_delegate_signs_for_the_identity_and_readers_accept_only_a_delegate() -> None:
    from radstream.services.overrides import delegated_override

    record = delegated_override(STUDY, FID, "rejected", "artefact", KEY, "dr-north", created_at=7)
    assert (record["by"], record["signer"], record["verdict"]) == ("dr-north", KEY.name, "REJECTED")
    as_delegate = parse_trusted_keys(KEY.public_line(delegate=True))
    assert rejection("FindingOverride", record, as_delegate) is None
    assert override_view(record) == {"verdict": "rejected", "by": "dr-north", "reason": "artefact", "at": 7,
                                     "via": KEY.name}
    # the same key listed without `delegate` signs only as itself
    assert "is not the signer" in rejection("FindingOverride", record, parse_trusted_keys(KEY.public_line()))
    assert "bad signature" in rejection("FindingOverride", {**record, "by": "dr-south"}, as_delegate)


def test_the_gateway_will_not_start_with_a_key_its_trusted_list_does_not_delegate(tmp_path) -> None:
    private, public, key = write_key_pair("gw", tmp_path)
    config = Config.from_env(env={"RADSTREAM_HOME": str(tmp_path / "home")})
    args = argparse.Namespace(signing_key=str(private))
    with pytest.raises(CliError, match="is not a delegate in the trusted keys: add `gw .* delegate`"):
        _override_writer(args, config, parse_trusted_keys(public.read_text()))
    writer = _override_writer(args, config, parse_trusted_keys(key.public_line(delegate=True)))
    assert writer is not None and writer.key.name == "gw"


def test_up_makes_a_dev_gateway_key_its_trusted_file_delegates(tmp_path) -> None:
    home = tmp_path / "home"
    trusted = parse_trusted_keys(ensure_dev_keys(home).read_text())
    config = Config.from_env(env={"RADSTREAM_HOME": str(home)})
    key = gateway_signing_key(config, None)
    assert key is not None and type(trusted[key.name]).__name__ == "DelegateKey"
    assert type(trusted["dev"]).__name__ != "DelegateKey"
    ensure_dev_keys(home)  # idempotent: no second line, no new key
    assert parse_trusted_keys((home / "keys" / "trusted-keys").read_text()).keys() == trusted.keys()
    prod = Config.from_env(env={"RADSTREAM_HOME": str(home), "RADSTREAM_ENV": "prod",
                                "RADSTREAM_KAFKA_SECURITY_PROTOCOL": "SSL",
                                "RADSTREAM_TRUSTED_KEYS": str(home / "keys" / "trusted-keys")})
    assert gateway_signing_key(prod, None) is None  # no dev fallback in prod
