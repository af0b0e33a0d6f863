"""Model weights encrypted at rest with AES-256-GCM; plaintext exists only in memory.

File format (v2): b"RSMODEL2", a 2-byte big-endian length, the binding (canonical JSON
`{"model": NAME, "version": VERSION}`), a 12-byte nonce, then the GCM ciphertext with its
16-byte tag. The magic and the binding are the GCM associated data: an artifact decrypts only
as the model name and version it was encrypted for, so one model's ciphertext cannot be
swapped in under another manifest (or an old version under a new one) even where both use
the same key. The key is 32 bytes, base64, from RADSTREAM_MODEL_KEY or from the file named by
RADSTREAM_MODEL_KEY_FILE (a Kubernetes Secret mount). A wrong key, a changed byte or another
binding fails, and the model is refused.

v1 files (b"RSMODEL1", AAD a constant) bound nothing; they are no longer loaded.
`radstream models encrypt OLD NEW --manifest M` re-encrypts one as v2 (the one place v1 is
still decrypted), which is the migration.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"RSMODEL2"
MAGIC_V1 = b"RSMODEL1"
NONCE_BYTES = 12
AAD_V1 = b"radstream model artifact v1"
# sha256 of the dev-only placeholder key committed in k8s/overlays/dev (a test pins it to that
# file): RADSTREAM_ENV=prod refuses it (models/manifest.py, production_refusal).
DEV_KEY_SHA256 = frozenset({"77a8a5c85bdbd38970ff7e587692b63d9e17b0728f8c27872e806d360d8644af"})


class ModelKeyError(ValueError):
    """No key, or a key that is not 32 bytes of base64."""


class DecryptionError(ValueError):
    """The file is not ours, or does not authenticate under the key (wrong key or tampered)."""


def parse_key(text: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        try:
            key = base64.urlsafe_b64decode(text.strip())
        except (binascii.Error, ValueError):
            raise ModelKeyError("model key is not valid base64") from None
    if len(key) != 32:
        raise ModelKeyError(f"model key must be 32 bytes (AES-256), got {len(key)}")
    return key


def load_key(env: dict[str, str] | None = None) -> bytes:
    """RADSTREAM_MODEL_KEY, else the file named by RADSTREAM_MODEL_KEY_FILE."""
    e = os.environ if env is None else env
    if e.get("RADSTREAM_MODEL_KEY"):
        return parse_key(e["RADSTREAM_MODEL_KEY"])
    if e.get("RADSTREAM_MODEL_KEY_FILE"):
        path = Path(e["RADSTREAM_MODEL_KEY_FILE"])
        try:
            return parse_key(path.read_text())
        except OSError as exc:
            raise ModelKeyError(f"cannot read model key file {path}: {exc.strerror}") from None
    raise ModelKeyError("encrypted model weights need RADSTREAM_MODEL_KEY or RADSTREAM_MODEL_KEY_FILE")


def new_key() -> str:
    return base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()


def key_fingerprint(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()


def is_dev_key(key: bytes) -> bool:
    """The dev overlay's published placeholder key, which production refuses."""
    return key_fingerprint(key) in DEV_KEY_SHA256


def _binding(model: str, version: str) -> bytes:
    return json.dumps({"model": model, "version": version}, sort_keys=True, separators=(",", ":")).encode()


def encrypt(plaintext: bytes, key: bytes, model: str, version: str) -> bytes:
    """A v2 artifact bound to `model` at `version`."""
    binding = _binding(model, version)
    header = MAGIC + len(binding).to_bytes(2, "big") + binding
    nonce = os.urandom(NONCE_BYTES)
    return header + nonce + AESGCM(key).encrypt(nonce, plaintext, header)


def is_encrypted(data: bytes) -> bool:
    return data[: len(MAGIC)] in (MAGIC, MAGIC_V1)


def binding_of(data: bytes) -> tuple[str, str]:
    """The (model, version) a v2 artifact says it is bound to (authenticated only by decrypt)."""
    if data[: len(MAGIC)] == MAGIC_V1:
        raise DecryptionError("a v1 artifact, bound to no model: re-encrypt it with "
                              "`radstream models encrypt OLD NEW --manifest M`")
    if data[: len(MAGIC)] != MAGIC or len(data) < len(MAGIC) + 2:
        raise DecryptionError("not an encrypted radstream model artifact")
    size = int.from_bytes(data[len(MAGIC): len(MAGIC) + 2], "big")
    try:
        binding = json.loads(data[len(MAGIC) + 2: len(MAGIC) + 2 + size])
        return str(binding["model"]), str(binding["version"])
    except (ValueError, KeyError, TypeError):
        raise DecryptionError("artifact header is damaged") from None


def decrypt(data: bytes, key: bytes, model: str, version: str) -> bytes:
    """The plaintext, if `data` authenticates under `key` as `model` at `version`."""
    bound = binding_of(data)
    if bound != (model, version):
        raise DecryptionError(f"artifact is bound to {bound[0]} v{bound[1]}, not {model} v{version} "
                              "(another model's or version's weights)")
    end = len(MAGIC) + 2 + int.from_bytes(data[len(MAGIC): len(MAGIC) + 2], "big")
    nonce = data[end: end + NONCE_BYTES]
    try:
        return AESGCM(key).decrypt(nonce, data[end + NONCE_BYTES:], data[:end])
    except InvalidTag:
        raise DecryptionError("artifact does not authenticate under this key (wrong key or tampered file)") from None


def decrypt_v1(data: bytes, key: bytes) -> bytes:
    """A v1 artifact's plaintext: only for re-encrypting it as v2 (`models encrypt`)."""
    if data[: len(MAGIC_V1)] != MAGIC_V1:
        raise DecryptionError("not a v1 radstream model artifact")
    nonce = data[len(MAGIC_V1): len(MAGIC_V1) + NONCE_BYTES]
    try:
        return AESGCM(key).decrypt(nonce, data[len(MAGIC_V1) + NONCE_BYTES:], AAD_V1)
    except InvalidTag:
        raise DecryptionError("artifact does not authenticate under this key (wrong key or tampered file)") from None
