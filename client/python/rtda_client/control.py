"""The control endpoint (ROUTER): ControlRequest -> ControlReply, the server's Status, and the
Status as text and as JSON.

The JSON is protobuf's JSON mapping of Status (json_format.MessageToDict with
preserving_proto_field_name: the field names of proto/rtda.proto, 64-bit integers as strings,
fields at their default left out), laid out as `rtda status --json` lays it out (C++
MessageToJsonString with add_whitespace): one space of indent per level, and each double as
C++ writes it (%.15g, or %.17g where that is needed to read back the same double). The two
programs print the same document byte for byte.
"""

from __future__ import annotations

import math
from typing import Optional

from google.protobuf import json_format

from .subscribe import analysis_dataset
from .wire import pb, request

COMMANDS = {"status": pb.COMMAND_STATUS, "pause": pb.COMMAND_PAUSE,
            "resume": pb.COMMAND_RESUME, "checkpoint": pb.COMMAND_CHECKPOINT,
            "set-filter": pb.COMMAND_SET_FILTER, "shutdown": pb.COMMAND_SHUTDOWN,
            "latest-analysis": pb.COMMAND_LATEST_ANALYSIS}


def control(endpoint: str, command: int, filter: str = "", with_fields: bool = False,
            timeout_s: float = 5.0, delimiter: bool = True, curve=None):
    """Sends a ControlRequest and returns the ControlReply; raises TimeoutError when none
    arrives within timeout_s."""
    req = pb.ControlRequest(version=pb.PROTOCOL_VERSION_1, command=command, filter=filter,
                            with_fields=with_fields)
    raw = request(endpoint, req.SerializeToString(), timeout_s, delimiter, curve)
    if raw is None:
        raise TimeoutError(f"{endpoint}: no ControlReply within {timeout_s:g} s")
    reply = pb.ControlReply()
    reply.ParseFromString(raw)
    return reply


def status(endpoint: str, timeout_s: float = 5.0, delimiter: bool = True, curve=None):
    """The server's Status (raises RuntimeError when the reply is not ok)."""
    reply = control(endpoint, pb.COMMAND_STATUS, timeout_s=timeout_s, delimiter=delimiter,
                    curve=curve)
    if not reply.ok:
        raise RuntimeError(f"{endpoint}: status refused: {reply.error}")
    return reply.status


def latest_analysis(endpoint: str, with_fields: bool = True, raw: bool = False,
                    length_m: Optional[float] = None, timeout_s: float = 5.0, curve=None):
    """The newest published analysis (COMMAND_LATEST_ANALYSIS), for a subscriber that joins
    late: a Dataset (raw=True: the Analysis message), or None before the first cycle."""
    reply = control(endpoint, pb.COMMAND_LATEST_ANALYSIS, with_fields=with_fields,
                    timeout_s=timeout_s, curve=curve)
    if not reply.ok:
        if "no analysis published" in reply.error:  # server/control.cpp, before cycle 0
            return None
        raise RuntimeError(f"{endpoint}: latest analysis refused: {reply.error}")
    if not reply.HasField("analysis"):
        return None
    return reply.analysis if raw else analysis_dataset(reply.analysis, length_m)


def counters(st) -> dict:
    return {c.name: c.value for c in st.counters}


def status_text(st) -> str:
    w = st.workers
    lines = [
        f"rtda-server {st.server_version}: {st.state}, up {st.uptime_seconds:.1f} s, "
        f"filter {st.filter}, config {st.config_hash}",
        f"cycles: last {st.last_cycle} (valid {st.last_valid_time_seconds / 3600:g} h), "
        f"next {st.next_cycle}, open windows {st.open_windows}, closed waiting "
        f"{st.closed_windows_waiting}",
        f"workers: {'connected' if w.connected else 'not connected'}, {w.ranks} ranks on "
        f"{w.host or '-'}, stage {w.stage or '-'}, cycle in flight {w.cycle_in_flight}, "
        f"heartbeat age {w.last_heartbeat_age_seconds:.1f} s, reconnects {w.reconnects}",
    ]
    if w.device:
        lines.append(f"device: {w.device} on {w.device_name} ({w.toolchain})")
    lines += [
        f"latency p50 {st.latency_p50_seconds * 1000:.1f} ms, p99 "
        f"{st.latency_p99_seconds * 1000:.1f} ms; newest checkpoint cycle "
        f"{st.newest_checkpoint_cycle}",
        f"data {st.data_dir}: log {st.log_bytes} bytes in {st.log_segments} segments",
    ]
    for c in st.counters:
        lines.append(f"  {c.name:<32} {c.value}")
    return "\n".join(lines)


# --- JSON, laid out as protobuf's C++ JSON printer lays it out ---------------------------------


def _double_text(v: float) -> str:
    if math.isnan(v):
        return '"NaN"'
    if math.isinf(v):
        return '"Infinity"' if v > 0 else '"-Infinity"'
    s = "%.15g" % v
    if float(s) != v:
        s = "%.17g" % v
    return s


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
            "\t": "\\t", "<": "\\u003c", ">": "\\u003e"}


def _string_text(s: str) -> str:
    out = []
    for ch in s:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ch in "\u2028\u2029" or 0x7f <= ord(ch) < 0xa0 or \
                ch == "\u00ad":
            out.append("\\u%04x" % ord(ch))
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _layout(v, indent: int) -> str:
    if isinstance(v, dict):
        if not v:
            return "{}"
        inner = " " * (indent + 1)
        items = [f"{inner}{_string_text(k)}: {_layout(x, indent + 1)}" for k, x in v.items()]
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    if isinstance(v, list):
        if not v:
            return "[]"
        inner = " " * (indent + 1)
        items = [f"{inner}{_layout(x, indent + 1)}" for x in v]
        return "[\n" + ",\n".join(items) + "\n" + " " * indent + "]"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return _double_text(v)
    if isinstance(v, int):
        return str(v)
    if v is None:
        return "null"
    return _string_text(str(v))


def status_json(st) -> str:
    """Status as JSON, the document `rtda status --json` prints (see the module's text)."""
    return _layout(status_dict(st), 0)


def status_dict(st) -> dict:
    """Status as protobuf's JSON mapping (json_format.MessageToDict, proto field names)."""
    return json_format.MessageToDict(st, preserving_proto_field_name=True)
