"""Subscribing to the publish endpoint (PUB): every message is two frames, the topic and an
Analysis. Topics: rtda.summary (diagnostics, latency, lineage), rtda.analysis (plus the
ensemble mean and spread), rtda.ensemble (plus every member, with
server.publish_members = true).

Analyses arrive as protobuf messages (Subscriber.recv, subscribe(raw=True)) or as
xarray.Datasets (analysis_dataset): `mean`, `spread` (level, y, x) in m s-1, `ensemble`
(member, level, y, x) on rtda.ensemble, each diagnostic as a scalar variable, the cycle and its
valid time as scalar coordinates (so xarray.concat(datasets, dim="cycle") makes an archive),
lineage, latency and the filter as attributes. subscribe() is the iterator, subscribe_async()
the asyncio stream (zmq.asyncio).
"""

from __future__ import annotations

from typing import AsyncIterator, Iterator, Optional, Sequence

import numpy as np
import zmq

from .wire import context, pb, recv_frames

TOPICS = ("rtda.summary", "rtda.analysis", "rtda.ensemble")
_FOREVER = 3600.0 * 24 * 365


def _check_topic(topic: str) -> None:
    if topic not in TOPICS:
        raise ValueError(f"topic {topic!r}: expected one of {', '.join(TOPICS)}")


def _parse(frames) -> tuple:
    if len(frames) < 2:
        raise RuntimeError(f"publish message with {len(frames)} frame(s), expected topic + "
                           "Analysis")
    a = pb.Analysis()
    a.ParseFromString(frames[-1])
    return frames[0].decode(errors="replace"), a


def _field_shape(n_values: int, grid_n: int, what: str) -> tuple:
    """(level, y, x) of a field of n_values on the grid of grid_n points along x: the SQG
    plane (2, N, N) or the Lorenz-96 ring (1, 1, n)."""
    if grid_n > 0 and n_values == 2 * grid_n * grid_n:
        return (2, grid_n, grid_n)
    if grid_n > 0 and n_values == grid_n:
        return (1, 1, grid_n)
    raise RuntimeError(f"Analysis.{what}: {n_values} values do not fit grid_n = {grid_n} "
                       f"(expected 2 x {grid_n} x {grid_n} or {grid_n})")


def analysis_dataset(a, length_m: Optional[float] = None):
    """The Analysis message `a` as an xarray.Dataset (see the module's text). x and y are in
    metres (i * length_m / grid_n) when length_m (the domain side L) is given, else grid
    indices."""
    import xarray as xr

    data_vars, coords = {}, {"cycle": int(a.cycle),
                             "time": ((), float(a.valid_time_seconds),
                                      {"units": "s", "long_name": "valid time of the analysis"})}
    shape = None
    for name, long_name in (("mean", "ensemble mean of the analysis"),
                            ("spread", "ensemble standard deviation of the analysis")):
        values = getattr(a, name)
        if len(values):
            shape = _field_shape(len(values), a.grid_n, name)
            data_vars[name] = (("level", "y", "x"), np.asarray(values, dtype=np.float64)
                               .reshape(shape), {"units": "m s-1", "long_name": long_name})
    if len(a.ensemble):
        per = len(a.ensemble) // max(a.members, 1)
        if a.members == 0 or per * a.members != len(a.ensemble):
            raise RuntimeError(f"Analysis.ensemble: {len(a.ensemble)} values for "
                               f"{a.members} members")
        shape = _field_shape(per, a.grid_n, "ensemble")
        data_vars["ensemble"] = (("member", "level", "y", "x"),
                                 np.asarray(a.ensemble, dtype=np.float64)
                                 .reshape((a.members,) + shape),
                                 {"units": "m s-1", "long_name": "analysis members"})
        coords["member"] = np.arange(a.members)
    if shape is not None:
        coords["level"] = ("level", np.arange(shape[0]), {"long_name": "0 surface, 1 lid"})
        for dim, n in (("y", shape[1]), ("x", shape[2])):
            if length_m is not None:
                coords[dim] = (dim, np.arange(n) * (float(length_m) / a.grid_n),
                               {"units": "m", "axis": dim.upper()})
            else:
                coords[dim] = (dim, np.arange(n), {"units": "1", "long_name": "grid index"})
    for name in sorted(a.diagnostics):
        data_vars[name] = ((), float(a.diagnostics[name]))

    lin, lat = a.lineage, a.latency
    attrs = {"filter": a.filter, "grid_n": int(a.grid_n), "members": int(a.members),
             "backlog_cycles": int(a.backlog_cycles), "degraded": int(a.degraded),
             "degraded_reason": a.degraded_reason}
    for f in ("observations_used", "observations_rejected", "first_observation_id",
              "last_observation_id", "config_hash", "model", "seed", "worker_ranks",
              "restarted_from_cycle", "surrogate_version", "observations_refused", "device",
              "device_name", "toolchain"):
        v = getattr(lin, f)
        attrs[f"lineage_{f}"] = v if isinstance(v, str) else int(v)
    for reason, n in sorted(lin.refused_by_reason.items()):
        attrs[f"lineage_refused_{reason}"] = int(n)
    for fd in lat.DESCRIPTOR.fields:
        attrs[f"latency_{fd.name}"] = float(getattr(lat, fd.name))
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


class Subscriber:
    """A SUB socket on the publish endpoint; recv() returns (topic, Analysis) or None."""

    def __init__(self, endpoint: str, topics: Sequence[str] = ("rtda.summary",), curve=None):
        for t in topics:
            _check_topic(t)
        self.sock = context().socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        for t in topics:
            self.sock.setsockopt(zmq.SUBSCRIBE, t.encode())
        if curve is not None:
            curve.apply(self.sock)
        self.sock.connect(endpoint)

    def recv(self, timeout_s: float):
        frames = recv_frames(self.sock, timeout_s)
        return None if frames is None else _parse(frames)

    def close(self):
        self.sock.close(0)

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


def subscribe(endpoint: str, topic: str = "rtda.analysis", count: Optional[int] = None,
              timeout_s: Optional[float] = None, raw: bool = False,
              length_m: Optional[float] = None, curve=None) -> Iterator:
    """Yields the analyses published on `topic` as xarray.Datasets (raw=True: Analysis
    messages), at most `count`; stops when none arrives within timeout_s (None: waits for
    ever). A PUB socket drops messages until the subscription has reached it, so subscribe
    before the cycles you want are published."""
    with Subscriber(endpoint, [topic], curve) as sub:
        n = 0
        while count is None or n < count:
            got = sub.recv(_FOREVER if timeout_s is None else timeout_s)
            if got is None:
                return
            # The exact topic only: "rtda.analysis" must not also take "rtda.analysisX".
            if got[0] != topic:
                continue
            n += 1
            yield got[1] if raw else analysis_dataset(got[1], length_m)


async def subscribe_async(endpoint: str, topic: str = "rtda.analysis",
                          count: Optional[int] = None, timeout_s: Optional[float] = None,
                          raw: bool = False, length_m: Optional[float] = None,
                          curve=None) -> AsyncIterator:
    """The asyncio form of subscribe() on a zmq.asyncio socket:

        async for ds in subscribe_async("tcp://127.0.0.1:5561", count=3): ...

    Stops after `count` analyses or when none arrives within timeout_s."""
    import asyncio

    import zmq.asyncio

    _check_topic(topic)
    ctx = zmq.asyncio.Context.instance()
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SUBSCRIBE, topic.encode())
    if curve is not None:
        curve.apply(sock)
    sock.connect(endpoint)
    try:
        n = 0
        while count is None or n < count:
            try:
                frames = await asyncio.wait_for(sock.recv_multipart(), timeout_s)
            except asyncio.TimeoutError:
                return
            got = _parse(frames)
            if got[0] != topic:
                continue
            n += 1
            yield got[1] if raw else analysis_dataset(got[1], length_m)
    finally:
        sock.close(0)


def analysis_line(a) -> str:
    """One line per analysis, as `watch` prints it (an Analysis message or a Dataset)."""
    if not isinstance(a, pb.Analysis):
        d = {k: float(v) for k, v in a.data_vars.items() if v.ndim == 0}
        cycle, valid, filt = int(a.cycle), float(a.time), a.attrs.get("filter", "")
        used, total = a.attrs.get("lineage_observations_used", 0), \
            a.attrs.get("latency_total_seconds", 0.0)
    else:
        d, cycle, valid, filt = a.diagnostics, a.cycle, a.valid_time_seconds, a.filter
        used, total = a.lineage.observations_used, a.latency.total_seconds
    parts = [f"cycle {cycle}", f"valid {valid / 3600:g} h", f"filter {filt or '-'}",
             f"obs {used}"]
    if "rmse_analysis" in d:
        parts.append(f"rmse_a {d['rmse_analysis']:.4g}")
    parts.append(f"spread_a {d['spread_analysis']:.4g}" if "spread_analysis" in d
                 else "spread_a -")
    parts.append(f"latency {total * 1000:.1f} ms")
    return "  ".join(parts)
