"""Observations from a table: a pandas DataFrame, an xarray Dataset (e.g. an observation file
opened with xarray) or a mapping of column names to arrays, with the columns

    time      model seconds since the run's epoch (model.epoch)
    level     0 surface, 1 lid
    x, y      position in metres on the periodic plane, in [0, L)
    value     the observed value, in the operator's units
    error_sd  the observation error's standard deviation (> 0)
    operator  a code of proto/rtda.proto (0, 1, 2) or its name (linear_K, arctan, identity)
    id        a unique non-negative integer

Everything is checked before anything is sent; a problem raises ObservationTableError naming
the column, the row and the value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from .wire import pb

COLUMNS = ("time", "level", "x", "y", "value", "error_sd", "operator", "id")

# The operator names of docs/file-formats.md (flag_meanings) and proto/rtda.proto.
OPERATOR_CODES = {"linear_k": pb.OPERATOR_LINEAR_K, "arctan": pb.OPERATOR_ARCTAN,
                  "identity": pb.OPERATOR_IDENTITY}
for _name in pb.ObservationOperator.keys():
    OPERATOR_CODES[_name.lower()] = pb.ObservationOperator.Value(_name)


class ObservationTableError(ValueError):
    """An observation table that cannot be sent: the message names column, row and value."""


@dataclass
class ObservationTable:
    """Checked observation columns, in the types of ObservationColumns."""
    time: np.ndarray
    level: np.ndarray
    x: np.ndarray
    y: np.ndarray
    value: np.ndarray
    error_sd: np.ndarray
    operator: np.ndarray
    id: np.ndarray

    def __len__(self) -> int:
        return len(self.time)

    def columns(self, start: int = 0, stop: Optional[int] = None):
        """Rows [start, stop) as an ObservationColumns message."""
        s = slice(start, stop)
        c = pb.ObservationColumns()
        c.id.extend(self.id[s].tolist())
        c.time_seconds.extend(self.time[s].tolist())
        c.level.extend(self.level[s].tolist())
        c.x_m.extend(self.x[s].tolist())
        c.y_m.extend(self.y[s].tolist())
        c.value.extend(self.value[s].tolist())
        c.error_sd.extend(self.error_sd[s].tolist())
        c.op.extend(self.operator[s].tolist())
        return c


def _columns_and_labels(data):
    """{column: 1-D array} and the row labels of `data`."""
    try:
        import pandas as pd
    except ImportError:  # pandas is optional
        pd = None
    try:
        import xarray as xr
    except ImportError:
        xr = None
    if pd is not None and isinstance(data, pd.DataFrame):
        present = [c for c in COLUMNS if c in data.columns]
        cols = {c: data[c].to_numpy() for c in present}
        return cols, list(data.index), "row"
    if xr is not None and isinstance(data, xr.Dataset):
        present = [c for c in COLUMNS if c in data.variables]
        cols, dim = {}, None
        for c in present:
            v = data[c]
            if v.ndim != 1:
                raise ObservationTableError(
                    f"observations: column {c!r} has dimensions {v.dims}, expected one "
                    "dimension (the observations)")
            if dim is None:
                dim = v.dims[0]
            elif v.dims[0] != dim:
                raise ObservationTableError(
                    f"observations: column {c!r} is along {v.dims[0]!r}, the others along "
                    f"{dim!r}")
            cols[c] = v.values
        n = len(next(iter(cols.values()))) if cols else 0
        return cols, list(range(n)), f"{dim or 'obs'} index"
    if isinstance(data, dict):
        cols = {c: np.asarray(data[c]) for c in COLUMNS if c in data}
        for c, v in cols.items():
            if v.ndim != 1:
                raise ObservationTableError(
                    f"observations: column {c!r} has shape {v.shape}, expected one dimension")
        n = len(next(iter(cols.values()))) if cols else 0
        return cols, list(range(n)), "row"
    raise ObservationTableError(
        f"observations: a pandas DataFrame, an xarray Dataset or a dict of columns expected, "
        f"got {type(data).__name__}")


class _Checker:
    def __init__(self, labels, what):
        self.labels = labels
        self.what = what

    def fail(self, column, rows, values, expected):
        rows = np.asarray(rows)
        i = int(rows[0])
        more = f" (and {len(rows) - 1} more rows)" if len(rows) > 1 else ""
        raise ObservationTableError(
            f"observations: column {column!r}, {self.what} {self.labels[i]!r}: "
            f"value {values[i]!r}: expected {expected}{more}")

    def numbers(self, column, raw, dtype=np.float64):
        try:
            if raw.dtype.kind in "mM":
                raise TypeError
            return np.asarray(raw, dtype=dtype)
        except (TypeError, ValueError):
            bad = []
            for i, v in enumerate(raw):
                try:
                    if isinstance(v, (np.datetime64, np.timedelta64)) or isinstance(v, bool):
                        raise TypeError
                    float(v)
                except (TypeError, ValueError):
                    bad.append(i)
            expected = "a number" if column != "time" else \
                "model seconds since model.epoch (a number)"
            self.fail(column, bad or [0], raw, expected)

    def where(self, column, bad, values, expected):
        rows = np.nonzero(bad)[0]
        if len(rows):
            self.fail(column, rows, values, expected)


def observation_table(data, domain_m: Optional[float] = None) -> ObservationTable:
    """Checks `data` (see the module's text) and returns its columns; `domain_m` (the side L
    of the periodic plane, in metres) also checks x and y < L."""
    if isinstance(data, ObservationTable):
        return data
    cols, labels, what = _columns_and_labels(data)
    missing = [c for c in COLUMNS if c not in cols]
    if missing:
        raise ObservationTableError(
            f"observations: missing column(s) {', '.join(repr(c) for c in missing)} (expected "
            f"{', '.join(COLUMNS)})")
    lengths = {c: len(v) for c, v in cols.items()}
    if len(set(lengths.values())) > 1:
        raise ObservationTableError(f"observations: columns of different lengths {lengths}")
    chk = _Checker(labels, what)

    out = {}
    for c in ("time", "x", "y", "value", "error_sd"):
        v = chk.numbers(c, cols[c])
        chk.where(c, ~np.isfinite(v), cols[c], "a finite number")
        out[c] = v
    chk.where("error_sd", out["error_sd"] <= 0, cols["error_sd"], "a standard deviation > 0")
    for c in ("x", "y"):
        chk.where(c, out[c] < 0, cols[c], "a position in [0, L) m")
        if domain_m is not None:
            chk.where(c, out[c] >= domain_m, cols[c], f"a position in [0, L = {domain_m:g}) m")

    level = chk.numbers("level", cols["level"])
    chk.where("level", ~np.isin(level, (0, 1)), cols["level"], "0 (surface) or 1 (lid)")
    out["level"] = level.astype(np.uint32)

    ident = chk.numbers("id", cols["id"])
    chk.where("id", ~np.isfinite(ident) | (ident < 0) | (ident != np.floor(ident)) |
              (ident >= 2.0 ** 64), cols["id"], "a non-negative integer")
    if cols["id"].dtype.kind in "iu":
        ids = np.asarray(cols["id"]).astype(np.uint64)
    else:
        ids = np.array([int(v) for v in cols["id"]], dtype=np.uint64)
    order = np.argsort(ids, kind="stable")
    dup = np.nonzero(ids[order][1:] == ids[order][:-1])[0]
    if len(dup):
        first, second = int(order[dup[0]]), int(order[dup[0] + 1])
        raise ObservationTableError(
            f"observations: column 'id', {what} {labels[second]!r}: value "
            f"{cols['id'][second]!r}: expected a unique id (also in {what} {labels[first]!r})")
    out["id"] = ids

    raw_op = cols["operator"]
    codes = np.empty(len(raw_op), dtype=np.int64)
    valid = set(pb.ObservationOperator.values())
    names = ", ".join(["linear_K", "arctan", "identity"])
    for i, v in enumerate(raw_op):
        if isinstance(v, bytes):
            v = v.decode(errors="replace")
        if isinstance(v, str):
            code = OPERATOR_CODES.get(v.strip().lower())
        elif isinstance(v, (bool, np.bool_)):
            code = None
        else:
            try:
                f = float(v)
                code = int(f) if f == int(f) and int(f) in valid else None
            except (TypeError, ValueError, OverflowError):
                code = None
        if code is None:
            chk.fail("operator", [i], raw_op,
                     f"an operator code {sorted(valid)} or name ({names})")
        codes[i] = code
    out["operator"] = codes
    return ObservationTable(**out)
