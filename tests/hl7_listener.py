"""A real MLLP listener for tests: hl7apy's own MLLPServer, parsing every message STRICT and
validating it against the 2.5.1 structures, answering with an ACK that hl7apy builds.

No RIS or interface engine can be installed here, so this stands in for the receiving
system: what it accepts, a 2.5.1 parser accepts. `answer` picks its behaviour: "AA",
"AE" (with an ERR segment), or "silent" (reads the message and never answers).
"""

from __future__ import annotations

import ssl
import threading
from dataclasses import dataclass, field
from typing import Any

from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.core import Message
from hl7apy.mllp import AbstractHandler, MLLPServer
from hl7apy.parser import parse_message
from radstream.services.export.mllp import frame

AE_TEXT = "Patient not found in the master patient index"


@dataclass
class Received:
    er7: str
    message: Any  # the hl7apy Message, parsed STRICT and validated


@dataclass
class Listener:
    host: str
    port: int
    answer: str = "AA"
    received: list[Received] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    server: Any = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def ack(er7_in: str, code: str, text: str = "") -> str:
    """An ACK^R01 (2.5.1) for the incoming message, built with hl7apy."""
    incoming = parse_message(er7_in, validation_level=VALIDATION_LEVEL.TOLERANT)
    out = Message("ACK", version="2.5.1", validation_level=VALIDATION_LEVEL.TOLERANT)
    out.msh.msh_3 = "TEST-RIS"
    out.msh.msh_5 = incoming.msh.msh_3.to_er7()
    out.msh.msh_7 = "20261203120000"
    out.msh.msh_9 = "ACK^R01^ACK"
    out.msh.msh_10 = "ACK" + incoming.msh.msh_10.to_er7()[:17]
    out.msh.msh_11 = "P"
    out.msh.msh_12 = "2.5.1"
    out.msa.msa_1 = code
    out.msa.msa_2 = incoming.msh.msh_10.to_er7()
    if code != "AA":
        err = out.add_segment("ERR")
        err.err_3 = "204^Unknown key identifier^HL70357"
        err.err_4 = "E"
        err.err_8 = text
    return out.to_er7()


def start_listener(host: str = "127.0.0.1", port: int = 0, answer: str = "AA", tls: ssl.SSLContext | None = None) -> Listener:
    """Start the listener in a thread (port 0: any free port); `stop()` ends it. With `tls` (a server
    context), MLLP over TLS: the handshake happens on accept, before hl7apy reads a byte."""
    listener = Listener(host, port, answer)

    class Handler(AbstractHandler):
        def reply(self) -> str:
            er7 = self.incoming_message
            try:
                message = parse_message(er7, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
                message.validate()
            except Exception as exc:  # noqa: BLE001 - whatever hl7apy raises is recorded for the test to fail on, and answered AR like a RIS
                listener.invalid.append(f"{type(exc).__name__}: {exc}")
                return frame(ack(er7, "AR", str(exc))).decode()
            listener.received.append(Received(er7, message))
            if listener.answer == "silent":
                raise TimeoutError("silent listener")  # MLLPRequestHandler closes without answering
            return frame(ack(er7, listener.answer, AE_TEXT if listener.answer == "AE" else "")).decode()

    server = MLLPServer(host, port, {"ORU^R01^ORU_R01": (Handler,)}, timeout=10)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    listener.server = server
    listener.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return listener
