"""The wire contract (proto/rtda.proto) and the sockets that speak it.

`pb` is the generated protobuf module, built into this package from proto/rtda.proto when the
package is installed. The ingest and control endpoints are ROUTER sockets that serve REQ and
DEALER clients; this client uses DEALER sockets and sends the REQ envelope (an empty delimiter
frame, then the payload), so the server sees exactly what a REQ client sends, and takes the
reply's payload from its last frame.
"""

from __future__ import annotations

from typing import Optional, Sequence

import zmq

from . import rtda_pb2 as pb

DEFAULT_INGEST = "tcp://127.0.0.1:5560"
DEFAULT_PUBLISH = "tcp://127.0.0.1:5561"
DEFAULT_CONTROL = "tcp://127.0.0.1:5562"

PROTOCOL_VERSION = pb.PROTOCOL_VERSION_1


def load_proto():
    """The generated protobuf module (rtda_client.rtda_pb2)."""
    return pb


def context() -> zmq.Context:
    return zmq.Context.instance()


def make_socket(kind: int, endpoint: str, curve=None, ctx: Optional[zmq.Context] = None):
    """A connected socket of `kind` with LINGER 0; with `curve` (a keys.CurveKeys) a CURVE
    client of the server it names."""
    s = (ctx or context()).socket(kind)
    s.setsockopt(zmq.LINGER, 0)
    if curve is not None:
        curve.apply(s)
    s.connect(endpoint)
    return s


def recv_frames(sock, timeout_s: float) -> Optional[list]:
    """One multipart message, or None when nothing arrives within timeout_s."""
    if sock.poll(int(max(timeout_s, 0) * 1000), zmq.POLLIN) == 0:
        return None
    return sock.recv_multipart()


def payload(frames: Sequence[bytes]) -> bytes:
    """The payload of a reply: its last frame (a REQ-style reply starts with an empty one)."""
    return frames[-1] if frames else b""


def send_raw(endpoint: str, frames: Sequence[bytes], timeout_s: float = 5.0,
             socket_type: int = zmq.DEALER, curve=None) -> Optional[list]:
    """Sends `frames` exactly as given from a fresh socket (no envelope added) and returns the
    reply's frames, or None when none arrives within timeout_s."""
    sock = make_socket(socket_type, endpoint, curve)
    try:
        sock.send_multipart([bytes(f) for f in frames])
        return recv_frames(sock, timeout_s)
    finally:
        sock.close(0)


def request(endpoint: str, data: bytes, timeout_s: float = 5.0, delimiter: bool = True,
            curve=None) -> Optional[bytes]:
    """One request/reply on a ROUTER endpoint from a fresh DEALER socket; returns the reply's
    payload or None on timeout."""
    frames = ([b""] if delimiter else []) + [data]
    reply = send_raw(endpoint, frames, timeout_s, curve=curve)
    return None if reply is None else payload(reply)


def ack_status_name(status: int) -> str:
    return pb.AckStatus.Name(status) if status in pb.AckStatus.values() else str(status)
