"""Ed25519 signatures on the records an operator pushes onto the bus (threshold sets,
finding overrides), and the trusted-keys list every reader checks them against.

A signature covers a canonical encoding of the record's *signed fields*, named here per
record kind, plus a domain tag naming the kind: a later schema field with a default cannot
change what an old signature covers, and an override's signature is never a valid threshold
signature. The encoding is canonical JSON (sorted keys, no whitespace, ASCII), which any
language can rebuild; the signer's name is inside it, so a signature cannot be re-labelled.

Key files are text, one line each, so they diff and mount like any other config:
  private key file:   `ed25519-private NAME BASE64(32-byte seed)`   (mode 0600)
  trusted-keys file:  `NAME BASE64(32-byte public key) [SITES | delegate]` per line; `#` comments, blank lines
SITES (`SITE_A,SITE_B`, or `*`) are the sites a key may sign arrivals for (D-038); a key
without them signs thresholds and overrides only. A private line starts with its tag, so a
private key pasted into a trusted-keys file is refused rather than trusted.

A `delegate` key belongs to a service that authenticates people itself (the gateway): it signs
finding overrides whose `by` is the person it authenticated, and nothing else (D-042). Every
other key signs only as itself.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

NAME_RE = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
PRIVATE_TAG = "ed25519-private"

# What each kind's signature covers. `signer` is always included; `signature` never is.
SIGNED_FIELDS: dict[str, tuple[str, ...]] = {
    "ThresholdSet": ("version", "scope", "author", "reason", "created_at", "values", "signer"),
    "FindingOverride": ("finding_id", "study_uid", "verdict", "by", "reason", "created_at", "signer"),
    # an arrival from `publish` or `pull` (or a receiver with a key): the site is what it vouches for
    "DicomArrived": ("idempotency_key", "study_uid", "series_uid", "sop_uid", "frame", "site",
                     "expected_instances", "arrived_at", "blob", "signer"),
}
# The field that names the person: it must be the signer, so nobody signs as someone else,
# except that a delegate key signs the kinds in DELEGABLE for the people its service authenticated.
ACTOR_FIELD = {"ThresholdSet": "author", "FindingOverride": "by", "DicomArrived": "signer"}
ANY_SITE = "*"
DELEGABLE = frozenset({"FindingOverride"})
DELEGATE_TAG = "delegate"  # a word, never a site: the third field of a delegate key's line
ACTOR_MAX = 128  # an identity (a JWT `sub`, a token name) as a delegate may record it


class KeyFileError(ValueError):
    """A key file or trusted-keys file that cannot be used; the message says which line and why."""


@dataclass(frozen=True)
class SigningKey:
    """A named Ed25519 private key: its name is who the signed records say acted."""

    name: str
    key: Ed25519PrivateKey

    def public_line(self, delegate: bool = False) -> str:
        """This key's line for a trusted-keys file (`delegate`: it signs overrides for others)."""
        line = f"{self.name} {_b64(self.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))}"
        return f"{line} {DELEGATE_TAG}" if delegate else line

    def private_line(self) -> str:
        seed = self.key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        return f"{PRIVATE_TAG} {self.name} {_b64(seed)}"


@dataclass(frozen=True)
class DelegateKey:
    """A trusted public key marked `delegate`: it signs overrides on behalf of the identities its
    service authenticated (`by` is that identity, `signer` this key), and no other kind."""

    public: Ed25519PublicKey

    def verify(self, signature: bytes, data: bytes) -> None:
        self.public.verify(signature, data)


TrustedKey = Ed25519PublicKey | DelegateKey


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _raw32(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise KeyFileError(f"{what} is not valid base64") from None
    if len(raw) != 32:
        raise KeyFileError(f"{what} must be 32 bytes (Ed25519), got {len(raw)}")
    return raw


def check_name(name: str) -> str:
    if not NAME_RE.match(name or ""):
        raise KeyFileError(f"key name {name!r}: use 1-64 of A-Z a-z 0-9 . _ @ -")
    return name


def new_signing_key(name: str) -> SigningKey:
    return SigningKey(check_name(name), Ed25519PrivateKey.generate())


def parse_signing_key(text: str, source: str = "key file") -> SigningKey:
    fields = text.split()
    if len(fields) != 3 or fields[0] != PRIVATE_TAG:
        raise KeyFileError(f"{source}: not a radstream private key (expected `{PRIVATE_TAG} NAME BASE64`)")
    seed = _raw32(fields[2], f"{source}: the key")
    return SigningKey(check_name(fields[1]), Ed25519PrivateKey.from_private_bytes(seed))


def parse_trusted_keys(text: str, source: str = "trusted keys") -> dict[str, TrustedKey]:
    """`NAME BASE64PUBKEY [SITES | delegate]` per line; a malformed line or a repeated name is an
    error, never skipped. A delegate key comes back as a DelegateKey."""
    return {name: key for name, (key, _) in _trusted_lines(text, source).items()}


def parse_key_sites(text: str, source: str = "trusted keys") -> dict[str, frozenset[str]]:
    """The sites each key may sign arrivals for (`*`: any); a key without a SITES column: none."""
    return {name: sites for name, (_, sites) in _trusted_lines(text, source).items()}


def _trusted_lines(text: str, source: str) -> dict[str, tuple[TrustedKey, frozenset[str]]]:
    keys: dict[str, tuple[TrustedKey, frozenset[str]]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        where = f"{source} line {number}"
        if fields[0] == PRIVATE_TAG or len(fields) not in (2, 3):
            raise KeyFileError(f"{where}: expected `NAME BASE64PUBKEY [SITES | {DELEGATE_TAG}]` (is this a private key?)")
        name = check_name(fields[0])
        if name in keys:
            raise KeyFileError(f"{where}: {name} is listed twice")
        public = Ed25519PublicKey.from_public_bytes(_raw32(fields[1], f"{where}: the key"))
        if len(fields) == 3 and fields[2] == DELEGATE_TAG:  # signs overrides for others, no arrivals
            keys[name] = (DelegateKey(public), frozenset())
            continue
        sites = frozenset(s for s in fields[2].split(",") if s) if len(fields) == 3 else frozenset()
        if len(fields) == 3 and (not sites or any(not NAME_RE.match(s) and s != ANY_SITE for s in sites)
                                 or DELEGATE_TAG in sites):
            raise KeyFileError(f"{where}: SITES must be `SITE[,SITE...]` or `*` (or the word `{DELEGATE_TAG}` alone)")
        keys[name] = (public, sites)
    return keys


def arrival_rejection(record: dict[str, Any], trusted: Any, sites: Any) -> str | None:
    """Why an arrival's site is not vouched for (unsigned, unknown key, bad signature, a key not
    allowed that site), or None when a trusted key allowed that site signed it as it stands."""
    why = rejection("DicomArrived", record, trusted)
    if why is not None:
        return why
    allowed = sites.get(record["signer"], frozenset())
    if ANY_SITE not in allowed and record.get("site") not in allowed:
        return f"key {record['signer']!r} may not sign arrivals for site {record.get('site')!r}"
    return None


def signing_payload(kind: str, record: dict[str, Any]) -> bytes:
    """The bytes a signature covers: the kind's tag, then its signed fields as canonical JSON."""
    fields = SIGNED_FIELDS[kind]
    body = {name: record.get(name) for name in fields}
    return f"radstream.{kind}.v1\n".encode() + json.dumps(
        body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


def sign(kind: str, record: dict[str, Any], key: SigningKey) -> dict[str, Any]:
    """The record as `key` signs it: the actor field and `signer` are the key's name."""
    signed = {**record, ACTOR_FIELD[kind]: key.name, "signer": key.name}
    signed["signature"] = _b64(key.key.sign(signing_payload(kind, signed)))
    return signed


def sign_for(kind: str, record: dict[str, Any], key: SigningKey, actor: str) -> dict[str, Any]:
    """The record as a delegate `key` signs it for `actor`, the person its service authenticated.
    Readers accept it only if they list the key as `delegate` (and only for DELEGABLE kinds)."""
    if kind not in DELEGABLE:
        raise ValueError(f"a {kind} is signed by its author's own key, never on someone's behalf")
    check_actor(actor)
    signed = {**record, ACTOR_FIELD[kind]: actor, "signer": key.name}
    signed["signature"] = _b64(key.key.sign(signing_payload(kind, signed)))
    return signed


def check_actor(actor: object) -> str:
    """An identity a delegate may record: 1-128 printable characters, no control characters."""
    if not isinstance(actor, str) or not 0 < len(actor) <= ACTOR_MAX or not actor.isprintable():
        raise ValueError(f"an actor is 1-{ACTOR_MAX} printable characters")
    return actor


def rejection(kind: str, record: dict[str, Any], trusted: dict[str, TrustedKey]) -> str | None:
    """Why `record` must be ignored (unsigned, unknown signer, actor not the signer and the
    signer no delegate for this kind, bad signature), or None when a trusted key signed it as
    it stands."""
    signer, signature = record.get("signer") or "", record.get("signature") or ""
    if not signer or not signature:
        return "unsigned"
    if signer not in trusted:
        return f"signed by unknown key {signer!r}"
    actor = record.get(ACTOR_FIELD[kind])
    if isinstance(trusted[signer], DelegateKey):
        if kind not in DELEGABLE:
            return f"signed by delegate key {signer!r}, which signs overrides only"
        try:
            check_actor(actor)
        except ValueError as exc:
            return f"{ACTOR_FIELD[kind]} {actor!r}: {exc}"
    elif actor != signer:
        return f"{ACTOR_FIELD[kind]} {actor!r} is not the signer {signer!r}"
    try:
        trusted[signer].verify(base64.b64decode(signature, validate=True), signing_payload(kind, record))
    except (InvalidSignature, binascii.Error, ValueError):
        return f"bad signature (signer {signer!r})"
    return None
