"""Feeding observations to the ingest endpoint: ObservationBatch messages, one DEALER
connection that waits for each IngestAck and retries the same (source, seq) on a timeout, and
the two sources of observations, an observation file (`rtda observe`) and a table (a pandas
DataFrame or an xarray Dataset, checked before anything is sent: table.py)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np
import zmq

from .files import NatureRun, ObservationFile, read_observation_file
from .table import ObservationTableError, observation_table
from .wire import ack_status_name, make_socket, payload, pb, recv_frames


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

    def record(self, ack, source: str, seq: int, n_observations: int, log) -> bool:
        """Counts one batch's final IngestAck; returns False when the batch was refused as a
        whole (the error is kept and logged)."""
        self.batches += 1
        self.observations_sent += n_observations
        self.acks.append(ack)
        if ack.status == pb.ACK_ACCEPTED:
            self.accepted += ack.accepted
            self.rejected += ack.rejected
            self.late += ack.late
            for r in ack.rejections[:5]:
                log(f"  {source}#{seq} observation {r.index} (id {r.id}) rejected: "
                    f"{r.field}: {r.reason}")
        elif ack.status == pb.ACK_DUPLICATE:
            self.duplicate_batches += 1
            self.duplicate_observations += ack.accepted
        else:
            self.rejected_batches += 1
            err = (f"{source}#{seq}: {ack_status_name(ack.status)}: "
                   f"{ack.error or '(no reason given)'}")
            self.errors.append(err)
            log(err)
            return False
        return True

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
                 delimiter: bool = True, log: Optional[Callable[[str], None]] = None,
                 curve=None):
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        self.tries = tries
        self.delimiter = delimiter
        self.log = log or (lambda s: None)
        self.retries = 0
        self.sock = make_socket(zmq.DEALER, endpoint, curve)

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
        data = batch.SerializeToString()
        frames = ([b""] if self.delimiter else []) + [data]
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
                reply = recv_frames(self.sock, left) if left > 0 else None
                if reply is None:
                    break  # timed out: resend the same (source, seq)
                ack = pb.IngestAck()
                try:
                    ack.ParseFromString(payload(reply))
                except Exception:  # noqa: BLE001 - an unreadable reply is skipped
                    self.log(f"unreadable reply ({len(payload(reply))} bytes) ignored")
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
              keep_batches: bool = False, curve=None) -> FeedSummary:
    """Feeds the windows [first_cycle, first_cycle + cycles) of an observation file to the
    ingest endpoint `server`: batches of at most `batch` observations with seq = first_seq,
    first_seq + 1, ...; the last batch of each window carries end_of_window_seconds = that
    cycle's time and, with `truth` (a nature-run file), the truth at that time plus the
    cycle's shock. Returns a FeedSummary (summary.ok is False when a batch was refused;
    with keep_batches, summary.sent holds every ObservationBatch sent). `curve`: the
    keys.CurveKeys of a CURVE server."""
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
        with Feeder(server, timeout_s, tries, delimiter, log, curve) as feeder:
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
                    if not summary.record(ack, source, seq, len(chunk), log) and stop_on_refusal:
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


def feed_table(data, server: str, source: str = "rtda-py", first_seq: int = 1,
               batch: int = 10000, end_of_window: Optional[float] = None, truth_q=None,
               truth_time: Optional[float] = None, domain_m: Optional[float] = None,
               timeout_s: float = 2.0, tries: int = 10, delimiter: bool = True,
               stop_on_refusal: bool = True, log: Optional[Callable[[str], None]] = None,
               curve=None, feeder: Optional[Feeder] = None) -> FeedSummary:
    """Sends the rows of `data` (a pandas DataFrame, an xarray Dataset or a dict of columns
    time, level, x, y, value, error_sd, operator, id: table.py) to the ingest endpoint
    `server` as ObservationColumns, at most `batch` rows per batch, seq = first_seq,
    first_seq + 1, ... The whole table is checked first (ObservationTableError names the
    column, row and value; nothing is sent then). With end_of_window (an analysis time t_k)
    the last batch carries the end-of-window marker, and with truth_q (level, y, x) the truth
    at truth_time (default: end_of_window). Pass `feeder` to reuse one connection."""
    log = log or (lambda s: None)
    if batch < 1:
        raise ValueError(f"batch = {batch}: expected at least 1")
    table = observation_table(data, domain_m)
    if len(table) == 0 and end_of_window is None and truth_q is None:
        raise ObservationTableError("observations: the table is empty and there is no "
                                    "end-of-window marker or truth to send")
    summary = FeedSummary()
    starts = list(range(0, len(table), batch)) or [0]
    own = feeder is None
    if own:
        feeder = Feeder(server, timeout_s, tries, delimiter, log, curve)
    try:
        seq = first_seq
        for j, start in enumerate(starts):
            stop = min(start + batch, len(table))
            last = j == len(starts) - 1
            b = pb.ObservationBatch(version=pb.PROTOCOL_VERSION_1, source=source, seq=int(seq))
            if stop > start:
                b.columns.CopyFrom(table.columns(start, stop))
            if last and end_of_window is not None:
                b.end_of_window_seconds = float(end_of_window)
            if last and truth_q is not None:
                q = np.ascontiguousarray(truth_q, dtype=np.float64)
                t = truth_time if truth_time is not None else end_of_window
                if t is None:
                    raise ValueError("truth_q needs truth_time or end_of_window")
                b.truth.time_seconds = float(t)
                b.truth.grid_n = int(q.shape[-1])
                b.truth.q.extend(q.ravel().tolist())
            ack = feeder.send(b)
            if not summary.record(ack, source, seq, stop - start, log) and stop_on_refusal:
                break
            seq += 1
        summary.windows = 1 if end_of_window is not None else 0
        summary.retries = feeder.retries
    finally:
        if own:
            feeder.close()
    return summary
