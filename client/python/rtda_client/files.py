"""Observation files and nature runs as `rtda observe` and `rtda nature` write them
(docs/file-formats.md), read with h5py."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np


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
