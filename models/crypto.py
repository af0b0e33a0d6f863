"""Model weights encrypted at rest with AES-256-GCM; plaintext exists only in memory.

File format: b"RSMODEL1", a 12-byte nonce, then the GCM ciphertext with its 16-byte tag.
The key is 32 bytes, base64, from RADSTREAM_MODEL_KEY or from the file named by
RADSTREAM_MODEL_KEY_FILE (a Kubernetes Secret mount). A wrong key or a changed byte
fails authentication, and the model is refused.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"RSMODEL1"
NONCE_BYTES = 12
AAD = b"radstream model artifact v1"


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


def encrypt(plaintext: bytes, key: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return MAGIC + nonce + AESGCM(key).encrypt(nonce, plaintext, AAD)


def is_encrypted(data: bytes) -> bool:
    return data[: len(MAGIC)] == MAGIC


def decrypt(data: bytes, key: bytes) -> bytes:
    if not is_encrypted(data):
        raise DecryptionError("not an encrypted radstream model artifact")
    nonce = data[len(MAGIC): len(MAGIC) + NONCE_BYTES]
    try:
        return AESGCM(key).decrypt(nonce, data[len(MAGIC) + NONCE_BYTES:], AAD)
    except InvalidTag:
        raise DecryptionError("artifact does not authenticate under this key (wrong key or tampered file)") from None
