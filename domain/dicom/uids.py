"""UIDs derived from what they identify, so that building the same object twice gives the same UID.

A PACS replaces an instance stored again under the same SOP Instance UID. Deriving the
UIDs of every object an export sends from the result's idempotency key makes a
redelivered result replace its objects instead of duplicating them, while a newer
result version (another key) makes new ones.
"""

from __future__ import annotations

import re
import uuid

from pydicom.uid import generate_uid

# PS3.5 B.2: UUID-derived UIDs under 2.25 need no registered root.
DEFAULT_UID_ROOT = "2.25"
# The namespace of radstream's name-based (RFC 4122 version 5) UUIDs under 2.25.
_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_OID, "radstream")
_ROOT = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")


def check_uid_root(root: str) -> str:
    """The root without a trailing dot; ValueError when it is not a UID prefix with room to spare."""
    root = root.rstrip(".")
    if not _ROOT.match(root) or len(root) > 32:
        raise ValueError(f"UID root {root!r} must be dot-separated numbers without leading zeros, "
                         "at most 32 characters (the derived part needs the rest of the 64)")
    return root


def derived_uid(kind: str, key: str, root: str = DEFAULT_UID_ROOT) -> str:
    """The UID of the `kind` object (e.g. "sr", "gsps/<sop>") made for `key`, under `root`."""
    root = check_uid_root(root)
    if root == DEFAULT_UID_ROOT:
        # not generate_uid(prefix=None, ...): that ignores entropy_srcs and returns a random UUID
        return f"2.25.{uuid.uuid5(_NAMESPACE, f'{kind}|{key}').int}"
    return generate_uid(prefix=f"{root}.", entropy_srcs=[kind, key])
