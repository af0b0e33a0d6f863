"""MLLP, the HL7 v2 Minimal Lower Layer Protocol: one framed message out, one framed answer back.

A frame is <VT> message <FS><CR> (0x0b ... 0x1c 0x0d). The client opens a connection per
message, sends it, and reads until the end of the answer frame or the timeout. Every way
of not getting an answer (refused, reset, timed out, closed early, no frame) is one
MllpNoAnswer with the reason: the caller retries those until the peer answers.
"""

from __future__ import annotations

import socket
import ssl
import time

START, END = b"\x0b", b"\x1c\x0d"
MAX_ANSWER_BYTES = 1 << 20  # an ACK is a few hundred bytes; a peer sending more is not answering


class MllpNoAnswer(Exception):
    """The peer did not answer with an MLLP frame; `reason` says how."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def frame(message: str) -> bytes:
    """The MLLP frame of one ER7 message (segments separated by CR), UTF-8."""
    return START + message.encode("utf-8") + END


def unframe(data: bytes) -> str:
    """The message inside one MLLP frame; ValueError when `data` is not one."""
    start = data.find(START)
    if start < 0 or not data.endswith(END):
        raise ValueError("not an MLLP frame (<VT> message <FS><CR>)")
    return data[start + 1:-len(END)].decode("utf-8", "replace")


def exchange(host: str, port: int, message: str, timeout_s: float = 30.0, tls: ssl.SSLContext | None = None) -> str:
    """Send one message and return the peer's answer (the message inside its frame). With `tls`,
    the connection is TLS (the peer's certificate and host name verified) before the first byte."""
    deadline = time.monotonic() + timeout_s
    peer = f"{host}:{port}"
    try:
        with _connect(host, port, timeout_s, tls) as sock:
            sock.sendall(frame(message))
            answer = b""
            while not answer.endswith(END):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise MllpNoAnswer(f"no answer from {peer} within {timeout_s:g} s")
                sock.settimeout(remaining)
                chunk = sock.recv(4096)
                if not chunk:
                    raise MllpNoAnswer(f"{peer} closed the connection without an answer"
                                       + (" frame" if answer else ""))
                answer += chunk
                if len(answer) > MAX_ANSWER_BYTES:
                    raise MllpNoAnswer(f"{peer} sent more than {MAX_ANSWER_BYTES} bytes without ending its frame")
    except MllpNoAnswer:
        raise
    except TimeoutError:
        raise MllpNoAnswer(f"no answer from {peer} within {timeout_s:g} s") from None
    except OSError as exc:
        raise MllpNoAnswer(f"cannot reach {peer}: {exc.strerror or exc}") from None
    try:
        return unframe(answer)
    except ValueError as exc:
        raise MllpNoAnswer(f"{peer} answered {exc}") from None


def _connect(host: str, port: int, timeout_s: float, tls: ssl.SSLContext | None) -> socket.socket:
    raw = socket.create_connection((host, port), timeout=timeout_s)
    if tls is None:
        return raw
    try:
        return tls.wrap_socket(raw, server_hostname=host)
    except ssl.SSLCertVerificationError as exc:
        raw.close()
        raise MllpNoAnswer(f"TLS: {host}:{port}'s certificate was refused ({exc.verify_message})") from None
    except (ssl.SSLError, OSError) as exc:
        raw.close()
        raise MllpNoAnswer(f"TLS handshake with {host}:{port} failed ({getattr(exc, 'reason', None) or exc})") from None
