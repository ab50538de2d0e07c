#!/usr/bin/python3
"""A small Python client for rtda-server: the wire contract (proto/rtda.proto) spoken from a
second language.

Needs pyzmq, protobuf, numpy and h5py (Debian: python3-zmq python3-protobuf python3-numpy
python3-h5py) and the generated module rtda_pb2.py, which the build writes to
<build>/proto/python (target rtda_proto_python). Point the client at it with --proto-dir DIR or
the environment variable RTDA_PROTO_PY=DIR.

Commands (docs/architecture.md §2):
  feed    read an observation file (kernels/io/observations_file.hpp) and send it window by
          window as ObservationBatch messages to the ingest endpoint (ROUTER), waiting for each
          IngestAck and retrying the same (source, seq) on a timeout;
  watch   subscribe to the publish endpoint (PUB) and print one line per Analysis;
  status  ask the control endpoint (ROUTER) for the server's Status.

As a module: load_proto(), feed_file(), subscribe() / Subscriber, status(), control(),
request() and send_raw().

Envelope: the ingest and control endpoints are ROUTER sockets that serve REQ and DEALER
clients. This client uses DEALER sockets and sends the REQ envelope (an empty delimiter frame,
then the payload), so the server sees exactly what a REQ client sends; the reply's payload is
its last frame. `--no-delimiter` sends the payload alone.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

import numpy as np
import zmq

pb = None  # the rtda_pb2 module, set by load_proto()

DEFAULT_INGEST = "tcp://127.0.0.1:5560"
DEFAULT_PUBLISH = "tcp://127.0.0.1:5561"
DEFAULT_CONTROL = "tcp://127.0.0.1:5562"


# ---------------------------------------------------------------------------------------------
# The generated protobuf module


def load_proto(proto_dir: Optional[str] = None):
    """Imports rtda_pb2 from `proto_dir`, else $RTDA_PROTO_PY, else a build tree next to this
    file (../../build/proto/python), else the normal import path. Returns the module."""
    global pb
    if pb is not None and proto_dir is None:
        return pb
    candidates = []
    if proto_dir:
        candidates.append(Path(proto_dir))
    elif os.environ.get("RTDA_PROTO_PY"):
        candidates.append(Path(os.environ["RTDA_PROTO_PY"]))
    else:
        here = Path(__file__).resolve().parent
        candidates.append(here.parent.parent / "build" / "proto" / "python")
    for c in candidates:
        if (c / "rtda_pb2.py").is_file():
            if str(c) not in sys.path:
                sys.path.insert(0, str(c))
            break
    else:
        if proto_dir or os.environ.get("RTDA_PROTO_PY"):
            raise RuntimeError(
                f"rtda_pb2.py not found in {candidates[0]} (build the target rtda_proto_python; "
                "it writes <build>/proto/python/rtda_pb2.py)")
    try:
        pb = importlib.import_module("rtda_pb2")
    except ImportError as e:
        raise RuntimeError(
            "cannot import rtda_pb2: pass --proto-dir <build>/proto/python or set RTDA_PROTO_PY "
            f"({e})") from e
    return pb


# ---------------------------------------------------------------------------------------------
# Sockets


_context: Optional[zmq.Context] = None


def _ctx() -> zmq.Context:
    global _context
    if _context is None:
        _context = zmq.Context.instance()
    return _context


def _socket(kind: int, endpoint: str) -> zmq.Socket:
    s = _ctx().socket(kind)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(endpoint)
    return s


def _recv_frames(sock: zmq.Socket, timeout_s: float) -> Optional[list[bytes]]:
    """One multipart message, or None when nothing arrives within timeout_s."""
    if sock.poll(int(max(timeout_s, 0) * 1000), zmq.POLLIN) == 0:
        return None
    return sock.recv_multipart()


def _payload(frames: Sequence[bytes]) -> bytes:
    """The payload of a reply: its last frame (a REQ-style reply starts with an empty one)."""
    return frames[-1] if frames else b""


def send_raw(endpoint: str, frames: Sequence[bytes], timeout_s: float = 5.0,
             socket_type: int = zmq.DEALER) -> Optional[list[bytes]]:
    """Sends `frames` exactly as given from a fresh DEALER socket (no envelope added) and
    returns the reply's frames, or None when none arrives within timeout_s."""
    sock = _socket(socket_type, endpoint)
    try:
        sock.send_multipart([bytes(f) for f in frames])
        return _recv_frames(sock, timeout_s)
    finally:
        sock.close(0)


def request(endpoint: str, payload: bytes, timeout_s: float = 5.0,
            delimiter: bool = True) -> Optional[bytes]:
    """One request/reply on a ROUTER endpoint from a fresh DEALER socket; returns the reply's
    payload or None on timeout."""
    frames = ([b""] if delimiter else []) + [payload]
    reply = send_raw(endpoint, frames, timeout_s)
    return None if reply is None else _payload(reply)


# ---------------------------------------------------------------------------------------------
# Observation files and nature runs (docs/architecture.md §7)


@dataclass
class ObservationFile:
    time: np.ndarray
    level: np.ndarray
    x: np.ndarray
    y: np.ndarray
    value: np.ndarray
    error_sd: np.ndarray
    operator: np.ndarray
    id: np.ndarray
    cycle_time: np.ndarray
    shock_sd: Optional[np.ndarray] = None
    shock: Optional[np.ndarray] = None  # (cycle, level, y, x) or None
    grid_n: int = 0

    def __len__(self) -> int:
        return len(self.time)

    def window_index(self) -> np.ndarray:
        """For each observation, the cycle whose analysis time it is valid for: the cycle_time it
        equals, otherwise the window (t_k - d/2, t_k + d/2] around the nearest cycle_time."""
        ct = self.cycle_time
        if len(ct) == 0:
            return np.full(len(self.time), -1, dtype=np.int64)
        # Nearest cycle time; a tie (exactly half-way) goes to the earlier cycle, as the
        # window (t_k - d/2, t_k + d/2] says.
        right = np.searchsorted(ct, self.time, side="left")
        right = np.clip(right, 0, len(ct) - 1)
        left = np.clip(right - 1, 0, len(ct) - 1)
        d_left = np.abs(self.time - ct[left])
        d_right = np.abs(ct[right] - self.time)
        return np.where(d_left <= d_right, left, right).astype(np.int64)


def read_observation_file(path: str) -> ObservationFile:
    """Reads an observation set; the message names the file and the variable on a problem."""
    import h5py
    need = ["time", "level", "x", "y", "value", "error_sd", "operator", "id", "cycle_time"]
    with h5py.File(path, "r") as f:
        missing = [v for v in need if v not in f]
        if missing:
            raise RuntimeError(f"{path}: not an rtda observation file: missing variable(s) "
                               f"{', '.join(missing)}")
        cols = {v: np.asarray(f[v][...]) for v in need}
        n = len(cols["time"])
        for v in need[:-1]:
            if cols[v].shape != (n,):
                raise RuntimeError(f"{path}: variable {v} has shape {cols[v].shape}, expected "
                                   f"({n},) along obs")
        shock_sd = np.asarray(f["shock_sd"][...]) if "shock_sd" in f else None
        shock = np.asarray(f["shock"][...]) if "shock" in f else None
        grid_n = int(np.asarray(f.attrs["N"]).ravel()[0]) if "N" in f.attrs else 0
    ct = cols["cycle_time"].astype(np.float64)
    if len(ct) > 1 and not np.all(np.diff(ct) > 0):
        raise RuntimeError(f"{path}: cycle_time is not strictly increasing")
    if shock is not None and (shock.ndim != 4 or shock.shape[0] != len(ct)):
        raise RuntimeError(f"{path}: variable shock has shape {shock.shape}, expected "
                           f"({len(ct)}, 2, N, N)")
    return ObservationFile(
        time=cols["time"].astype(np.float64), level=cols["level"].astype(np.int64),
        x=cols["x"].astype(np.float64), y=cols["y"].astype(np.float64),
        value=cols["value"].astype(np.float64), error_sd=cols["error_sd"].astype(np.float64),
        operator=cols["operator"].astype(np.int64), id=cols["id"].astype(np.uint64),
        cycle_time=ct, shock_sd=shock_sd, shock=shock, grid_n=grid_n)


class NatureRun:
    """Random access to the states of a nature-run file: q (time, level, y, x), time (time)."""

    def __init__(self, path: str):
        import h5py
        self.path = path
        self._f = h5py.File(path, "r")
        for v in ("q", "time"):
            if v not in self._f:
                raise RuntimeError(f"{path}: not a nature run: missing variable {v}")
        self.q = self._f["q"]
        self.time = np.asarray(self._f["time"][...], dtype=np.float64)
        if self.q.ndim != 4 or self.q.shape[0] != len(self.time) or self.q.shape[1] != 2 or \
                self.q.shape[2] != self.q.shape[3]:
            raise RuntimeError(f"{path}: variable q has shape {self.q.shape}, expected "
                               f"({len(self.time)}, 2, N, N)")
        self.grid_n = int(self.q.shape[3])

    def state_at(self, t: float):
        """The state whose time equals t (to 1e-6 s), as float64 (2, N, N)."""
        idx = np.nonzero(np.abs(self.time - t) <= 1e-6 * max(1.0, abs(t)))[0]
        if len(idx) == 0:
            raise RuntimeError(f"{self.path}: no state at time {t:g} s (holds "
                               f"{self.time[0]:g}..{self.time[-1]:g} s)")
        return np.asarray(self.q[int(idx[0])], dtype=np.float64)

    def close(self):
        self._f.close()


# ---------------------------------------------------------------------------------------------
# Messages


def make_observation(obs: ObservationFile, i: int):
    o = pb.Observation()
    o.id = int(obs.id[i])
    o.time_seconds = float(obs.time[i])
    o.level = int(obs.level[i])
    o.x_m = float(obs.x[i])
    o.y_m = float(obs.y[i])
    o.value = float(obs.value[i])
    o.error_sd = float(obs.error_sd[i])
    o.op = int(obs.operator[i])
    return o


def make_batch(source: str, seq: int, obs: Optional[ObservationFile] = None,
               indices: Sequence[int] = (), end_of_window: Optional[float] = None,
               truth_q=None, truth_time: Optional[float] = None):
    """An ObservationBatch of observations `indices` of `obs`; with end_of_window the window
    marker, with truth_q (2, N, N) a TruthState."""
    b = pb.ObservationBatch()
    b.version = pb.PROTOCOL_VERSION_1
    b.source = source
    b.seq = int(seq)
    if obs is not None:
        b.observations.extend(make_observation(obs, int(i)) for i in indices)
    if end_of_window is not None:
        b.end_of_window_seconds = float(end_of_window)
    if truth_q is not None:
        q = np.ascontiguousarray(truth_q, dtype=np.float64)
        b.truth.time_seconds = float(truth_time if truth_time is not None else end_of_window)
        b.truth.grid_n = int(q.shape[-1])
        b.truth.q.extend(q.ravel().tolist())
    return b


def ack_status_name(status: int) -> str:
    return pb.AckStatus.Name(status) if status in pb.AckStatus.values() else str(status)


# ---------------------------------------------------------------------------------------------
# feed


@dataclass
class FeedSummary:
    batches: int = 0
    observations_sent: int = 0
    accepted: int = 0             # observations stored (ACK_ACCEPTED)
    rejected: int = 0             # observations refused individually
    late: int = 0                 # accepted but moved to a later window
    duplicate_batches: int = 0    # ACK_DUPLICATE
    duplicate_observations: int = 0  # what those batches had stored the first time
    rejected_batches: int = 0     # ACK_REJECTED / ACK_ERROR: refused as a whole
    retries: int = 0
    windows: int = 0
    errors: list = field(default_factory=list)
    acks: list = field(default_factory=list)  # every final IngestAck, in order
    sent: list = field(default_factory=list)  # the batches sent (with keep_batches=True)

    @property
    def ok(self) -> bool:
        return self.rejected_batches == 0

    def line(self) -> str:
        return (f"fed {self.windows} windows in {self.batches} batches: "
                f"{self.observations_sent} observations sent, {self.accepted} accepted, "
                f"{self.rejected} rejected, {self.late} late, "
                f"{self.duplicate_batches} duplicate batches "
                f"({self.duplicate_observations} observations), "
                f"{self.rejected_batches} batches refused, {self.retries} retries")


class Feeder:
    """One DEALER connection to the ingest endpoint; send() waits for the matching IngestAck
    and retries the same (source, seq) after each timeout."""

    def __init__(self, endpoint: str, timeout_s: float = 2.0, tries: int = 10,
                 delimiter: bool = True, log: Optional[Callable[[str], None]] = None):
        load_proto()
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        self.tries = tries
        self.delimiter = delimiter
        self.log = log or (lambda s: None)
        self.retries = 0
        self.sock = _socket(zmq.DEALER, endpoint)

    def close(self):
        self.sock.close(0)

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def send(self, batch, max_rate_waits: int = 100):
        """Sends `batch` until an IngestAck for its (source, seq) arrives; returns that ack.
        A rate-limited refusal (retry_after_seconds > 0) is retried after the wait it names.
        Raises TimeoutError after `tries` attempts without an ack."""
        payload = batch.SerializeToString()
        frames = ([b""] if self.delimiter else []) + [payload]
        attempts = 0
        rate_waits = 0
        while attempts < self.tries:
            attempts += 1
            if attempts > 1:
                self.retries += 1
                self.log(f"no ack for {batch.source}#{batch.seq} after {self.timeout_s:g} s: "
                         f"retry {attempts - 1}")
            self.sock.send_multipart(frames)
            deadline = time.monotonic() + self.timeout_s
            while True:
                left = deadline - time.monotonic()
                reply = _recv_frames(self.sock, left) if left > 0 else None
                if reply is None:
                    break  # timed out: resend the same (source, seq)
                ack = pb.IngestAck()
                try:
                    ack.ParseFromString(_payload(reply))
                except Exception:  # noqa: BLE001 - an unreadable reply is skipped
                    self.log(f"unreadable reply ({len(_payload(reply))} bytes) ignored")
                    continue
                if ack.status == pb.ACK_ERROR and not ack.source:
                    # The server could not read what it got, so it cannot name the batch.
                    return ack
                if ack.source != batch.source or ack.seq != batch.seq:
                    continue  # a late ack for an earlier attempt or batch
                # Rate limited, or the server cannot store now (ACK_UNAVAILABLE): wait, resend.
                if (ack.status in (pb.ACK_REJECTED, pb.ACK_UNAVAILABLE)
                        and ack.retry_after_seconds > 0 and rate_waits < max_rate_waits):
                    rate_waits += 1
                    time.sleep(min(ack.retry_after_seconds, 30.0))
                    attempts -= 1  # a rate-limit wait is not a lost message
                    break
                return ack
        raise TimeoutError(f"{self.endpoint}: no IngestAck for source {batch.source!r} seq "
                           f"{batch.seq} after {self.tries} tries of {self.timeout_s:g} s")


    def position(self, source: str) -> Optional[int]:
        """The newest durable seq of `source` on the server (a position query), None when the
        server holds nothing from it."""
        q = pb.ObservationBatch(version=pb.PROTOCOL_VERSION_1, source=source,
                                position_query=True)
        ack = self.send(q)
        if ack.status != pb.ACK_POSITION:
            raise RuntimeError(f"position query for {source!r}: {ack_status_name(ack.status)} "
                               f"{ack.error!r}")
        return ack.durable_seq if ack.HasField("durable_seq") else None


def feed_file(obs_path: str, server: str, source: str = "rtda-py", batch: int = 1000,
              first_seq: int = 1, truth: Optional[str] = None, cycles: Optional[int] = None,
              first_cycle: int = 0, timeout_s: float = 2.0, tries: int = 10,
              delimiter: bool = True, stop_on_refusal: bool = True,
              log: Optional[Callable[[str], None]] = None,
              keep_batches: bool = False) -> FeedSummary:
    """Feeds the windows [first_cycle, first_cycle + cycles) of an observation file to the
    ingest endpoint `server`: batches of at most `batch` observations with seq = first_seq,
    first_seq + 1, ...; the last batch of each window carries end_of_window_seconds = that
    cycle's time and, with `truth` (a nature-run file), the truth at that time plus the
    cycle's shock. Returns a FeedSummary (summary.ok is False when a batch was refused;
    with keep_batches, summary.sent holds every ObservationBatch sent)."""
    load_proto()
    log = log or (lambda s: None)
    if batch < 1:
        raise ValueError("batch must be at least 1")
    obs = read_observation_file(obs_path)
    nature = NatureRun(truth) if truth else None
    if nature is not None and obs.grid_n and nature.grid_n != obs.grid_n:
        raise RuntimeError(f"{truth}: grid N = {nature.grid_n}, but {obs_path} has N = "
                           f"{obs.grid_n}")
    window = obs.window_index()
    n_cycles = len(obs.cycle_time)
    last = n_cycles if cycles is None else min(n_cycles, first_cycle + cycles)
    summary = FeedSummary()
    seq = first_seq
    try:
        with Feeder(server, timeout_s, tries, delimiter, log) as feeder:
            for c in range(first_cycle, last):
                t = float(obs.cycle_time[c])
                idx = np.nonzero(window == c)[0]
                chunks = [idx[i:i + batch] for i in range(0, len(idx), batch)] or [idx[:0]]
                for j, chunk in enumerate(chunks):
                    is_last = j == len(chunks) - 1
                    truth_q = None
                    if is_last and nature is not None:
                        truth_q = nature.state_at(t)
                        if obs.shock is not None and (obs.shock_sd is None or
                                                      obs.shock_sd[c] > 0):
                            truth_q = truth_q + obs.shock[c]
                    msg = make_batch(source, seq, obs, chunk,
                                     end_of_window=t if is_last else None,
                                     truth_q=truth_q, truth_time=t)
                    if keep_batches:
                        summary.sent.append(msg)
                    ack = feeder.send(msg)
                    summary.batches += 1
                    summary.observations_sent += len(chunk)
                    summary.acks.append(ack)
                    if ack.status == pb.ACK_ACCEPTED:
                        summary.accepted += ack.accepted
                        summary.rejected += ack.rejected
                        summary.late += ack.late
                        for r in ack.rejections[:5]:
                            log(f"  {source}#{seq} observation {r.index} (id {r.id}) rejected: "
                                f"{r.field}: {r.reason}")
                    elif ack.status == pb.ACK_DUPLICATE:
                        summary.duplicate_batches += 1
                        summary.duplicate_observations += ack.accepted
                    else:
                        summary.rejected_batches += 1
                        err = (f"{source}#{seq}: {ack_status_name(ack.status)}: "
                               f"{ack.error or '(no reason given)'}")
                        summary.errors.append(err)
                        log(err)
                        if stop_on_refusal:
                            summary.retries = feeder.retries
                            return summary
                    seq += 1
                summary.windows += 1
                log(f"window {c} (t = {t / 3600:g} h): {len(idx)} observations in "
                    f"{len(chunks)} batches")
            summary.retries = feeder.retries
    finally:
        if nature is not None:
            nature.close()
    return summary


# ---------------------------------------------------------------------------------------------
# watch


class Subscriber:
    """A SUB socket on the publish endpoint; recv() returns (topic, Analysis) or None."""

    def __init__(self, endpoint: str, topics: Sequence[str] = ("rtda.summary",)):
        load_proto()
        self.sock = _ctx().socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        for t in topics:
            self.sock.setsockopt(zmq.SUBSCRIBE, t.encode())
        self.sock.connect(endpoint)

    def recv(self, timeout_s: float):
        frames = _recv_frames(self.sock, timeout_s)
        if frames is None:
            return None
        if len(frames) < 2:
            raise RuntimeError(f"publish message with {len(frames)} frame(s), expected "
                               "topic + Analysis")
        a = pb.Analysis()
        a.ParseFromString(frames[-1])
        return frames[0].decode(errors="replace"), a

    def close(self):
        self.sock.close(0)

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


def subscribe(endpoint: str, topic: str = "rtda.summary", count: Optional[int] = None,
              timeout_s: Optional[float] = None) -> Iterator:
    """Yields Analysis messages from the publish endpoint (at most `count`); stops when none
    arrives within timeout_s (None: wait forever)."""
    with Subscriber(endpoint, [topic]) as sub:
        n = 0
        while count is None or n < count:
            got = sub.recv(3600.0 * 24 * 365 if timeout_s is None else timeout_s)
            if got is None:
                return
            # The exact topic only: "rtda.analysis" must not also take "rtda.analysisX".
            if got[0] != topic:
                continue
            n += 1
            yield got[1]


def analysis_line(a) -> str:
    d = a.diagnostics
    parts = [f"cycle {a.cycle}", f"valid {a.valid_time_seconds / 3600:g} h",
             f"filter {a.filter or '-'}", f"obs {a.lineage.observations_used}"]
    if "rmse_analysis" in d:
        parts.append(f"rmse_a {d['rmse_analysis']:.4g}")
    parts.append(f"spread_a {d['spread_analysis']:.4g}" if "spread_analysis" in d
                 else "spread_a -")
    parts.append(f"latency {a.latency.total_seconds * 1000:.1f} ms")
    return "  ".join(parts)


# ---------------------------------------------------------------------------------------------
# control


def control(endpoint: str, command: int, filter: str = "", with_fields: bool = False,
            timeout_s: float = 5.0, delimiter: bool = True):
    """Sends a ControlRequest and returns the ControlReply; raises TimeoutError when none
    arrives within timeout_s."""
    load_proto()
    req = pb.ControlRequest()
    req.version = pb.PROTOCOL_VERSION_1
    req.command = command
    req.filter = filter
    req.with_fields = with_fields
    raw = request(endpoint, req.SerializeToString(), timeout_s, delimiter)
    if raw is None:
        raise TimeoutError(f"{endpoint}: no ControlReply within {timeout_s:g} s")
    reply = pb.ControlReply()
    reply.ParseFromString(raw)
    return reply


def status(endpoint: str, timeout_s: float = 5.0, delimiter: bool = True):
    """The server's Status (raises RuntimeError when the reply is not ok)."""
    load_proto()
    reply = control(endpoint, pb.COMMAND_STATUS, timeout_s=timeout_s, delimiter=delimiter)
    if not reply.ok:
        raise RuntimeError(f"{endpoint}: status refused: {reply.error}")
    return reply.status


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
        f"latency p50 {st.latency_p50_seconds * 1000:.1f} ms, p99 "
        f"{st.latency_p99_seconds * 1000:.1f} ms; newest checkpoint cycle "
        f"{st.newest_checkpoint_cycle}",
        f"data {st.data_dir}: log {st.log_bytes} bytes in {st.log_segments} segments",
    ]
    for c in st.counters:
        lines.append(f"  {c.name:<32} {c.value}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# CLI


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--proto-dir", help="directory holding rtda_pb2.py "
                   "(default: $RTDA_PROTO_PY, else ../../build/proto/python)")
    p.add_argument("--no-delimiter", action="store_true",
                   help="send requests without the empty REQ delimiter frame")
    sub = p.add_subparsers(dest="command", required=True)

    f = sub.add_parser("feed", help="send an observation file to the ingest endpoint")
    f.add_argument("--obs", required=True, help="observation file (rtda observe)")
    f.add_argument("--server", default=DEFAULT_INGEST, help="ingest endpoint")
    f.add_argument("--source", default="rtda-py", help="feeder identity")
    f.add_argument("--batch", type=int, default=1000, help="observations per batch")
    f.add_argument("--first-seq", type=int, default=1, help="seq of the first batch")
    f.add_argument("--truth", help="nature-run file: send the truth with each window marker")
    f.add_argument("--cycles", type=int, help="feed only this many windows")
    f.add_argument("--first-cycle", type=int, default=0, help="first window fed")
    f.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for an ack")
    f.add_argument("--tries", type=int, default=10, help="attempts per batch")
    f.add_argument("--keep-going", action="store_true",
                   help="continue after a batch is refused as a whole")
    f.add_argument("--quiet", action="store_true")

    w = sub.add_parser("watch", help="print one line per published Analysis")
    w.add_argument("--server", default=DEFAULT_PUBLISH, help="publish endpoint")
    w.add_argument("--count", type=int, help="exit after this many analyses")
    w.add_argument("--topic", default="rtda.summary",
                   help="rtda.summary | rtda.analysis | rtda.ensemble")
    w.add_argument("--timeout", type=float, help="exit (status 1) after this long without one")

    s = sub.add_parser("status", help="print the server's status")
    s.add_argument("--server", default=DEFAULT_CONTROL, help="control endpoint")
    s.add_argument("--json", action="store_true", help="as JSON")
    s.add_argument("--timeout", type=float, default=5.0)

    a = p.parse_args(argv)
    try:
        load_proto(a.proto_dir)
    except RuntimeError as e:
        print(f"rtda_client: {e}", file=sys.stderr)
        return 2
    delimiter = not a.no_delimiter

    try:
        if a.command == "feed":
            log = (lambda m: None) if a.quiet else (lambda m: print(m, flush=True))
            summ = feed_file(a.obs, a.server, a.source, a.batch, a.first_seq, a.truth,
                             a.cycles, a.first_cycle, a.timeout, a.tries, delimiter,
                             stop_on_refusal=not a.keep_going, log=log)
            print(summ.line(), flush=True)
            if a.quiet:
                for e in summ.errors:
                    print(f"refused: {e}", file=sys.stderr)
            return 0 if summ.ok else 1
        if a.command == "watch":
            n = 0
            for an in subscribe(a.server, a.topic, a.count, a.timeout):
                print(analysis_line(an), flush=True)
                n += 1
            if a.count is not None and n < a.count:
                print(f"rtda_client: only {n} of {a.count} analyses before the timeout",
                      file=sys.stderr)
                return 1
            return 0
        if a.command == "status":
            st = status(a.server, a.timeout, delimiter)
            if a.json:
                from google.protobuf import json_format
                print(json_format.MessageToJson(st, preserving_proto_field_name=True))
            else:
                print(status_text(st))
            return 0
    except (TimeoutError, RuntimeError, OSError, zmq.ZMQError) as e:
        print(f"rtda_client: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 2


if __name__ == "__main__":
    sys.exit(main())
