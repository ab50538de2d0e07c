"""Reading analysis archives as one xarray.Dataset: the service's per-cycle files
(data_dir/analyses/analysis-<cycle>.h5) or the archive of `rtda experiment --out FILE`, each
with mean and spread (cycle, level, y, x), the valid time and one variable per diagnostic along
`cycle` (kernels/io/archive.hpp). Files are read one by one (xarray with netCDF4, loaded into
memory) and concatenated along `cycle`; variables are found by name, so attributes a file
carries in addition do not matter. Times stay in model seconds (decode_times=False).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable, Union

import numpy as np

_CYCLE_FILE = re.compile(r"^analysis-(\d+)\.h5$")


def archive_files(path) -> list:
    """The archive files `path` names: a file; a directory of analysis-<cycle>.h5 files (by
    cycle); a service data_dir (its analyses/); or a directory of experiment archives (*.h5,
    in name order)."""
    p = Path(path)
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise FileNotFoundError(f"{p}: no such archive file or directory")
    for d in (p, p / "analyses"):
        if d.is_dir():
            cycles = [(int(m.group(1)), f) for f in d.iterdir()
                      if (m := _CYCLE_FILE.match(f.name)) and f.is_file()]
            if cycles:
                return [f for _, f in sorted(cycles)]
    files = sorted(f for f in p.glob("*.h5") if f.is_file())
    if not files:
        raise FileNotFoundError(f"{p}: no analysis-<cycle>.h5 or other .h5 archive files")
    return files


def _open_one(path: Path):
    import importlib.util

    import xarray as xr
    engine = "netcdf4" if importlib.util.find_spec("netCDF4") else None
    try:
        with xr.open_dataset(path, engine=engine, decode_times=False) as ds:
            ds = ds.load()
    except Exception as e:  # noqa: BLE001 - name the file whatever the reader raised
        raise RuntimeError(f"{path}: cannot read as an analysis archive: {e}") from e
    for v in ("mean", "spread"):
        if v not in ds.variables:
            raise RuntimeError(f"{path}: not an analysis archive: no variable {v!r}")
        if "cycle" not in ds[v].dims:
            raise RuntimeError(f"{path}: variable {v!r} has dimensions {ds[v].dims}, "
                               "expected (cycle, level, y, x)")
    if "cycle" not in ds.coords:
        ds = ds.assign_coords(cycle=range(ds.sizes["cycle"]))
    cycle = ds["cycle"].values
    if cycle.dtype.kind == "f" and np.all(np.isfinite(cycle)) and np.all(cycle == np.round(cycle)):
        ds = ds.assign_coords(cycle=("cycle", cycle.astype(np.int64), ds["cycle"].attrs))
    ds.attrs["source_files"] = str(path)
    return ds


def _fill_missing(parts: list, dim: str) -> list:
    """The parts with every data variable any of them has: a variable a part lacks (a
    diagnostic that some cycles do not report) is added there as NaN, with the shape it has
    elsewhere and that part's length along `dim`."""
    import xarray as xr
    names = {}
    for ds in parts:
        for name, v in ds.data_vars.items():
            names.setdefault(name, v)
    out = []
    for ds in parts:
        add = {}
        for name, like in names.items():
            if name in ds.variables:
                continue
            shape = tuple(ds.sizes.get(d, like.sizes[d]) if d == dim else like.sizes[d]
                          for d in like.dims)
            add[name] = xr.Variable(like.dims, np.full(shape, np.nan), like.attrs)
        out.append(ds.assign(add) if add else ds)
    return out


def concat_analyses(datasets: Iterable):
    """One Dataset along `cycle` from the per-cycle Datasets of subscribe() (or archive
    files): xarray.concat, where a diagnostic missing from some cycles is NaN there."""
    import xarray as xr
    parts = list(datasets)
    if not parts:
        raise ValueError("concat_analyses: no datasets")
    return xr.concat(_fill_missing(parts, "cycle"), dim="cycle", data_vars="minimal",
                     coords="minimal", compat="override", combine_attrs="drop_conflicts")


def open_archive(path: Union[str, Path, Iterable]):
    """The whole analysis archive under `path` (see archive_files; a list of files also
    works) as one Dataset along `cycle`, sorted by cycle. Attributes that differ between the
    files are dropped, except source_files, which lists them; a diagnostic some files lack is
    NaN for their cycles. A cycle found in two files is an error naming both."""
    import xarray as xr
    if isinstance(path, (str, Path)):
        files = archive_files(path)
    else:
        files = [Path(f) for f in path]
        if not files:
            raise FileNotFoundError("open_archive: no files given")
    parts = [_open_one(f) for f in files]
    seen = {}
    for f, ds in zip(files, parts):
        for c in ds["cycle"].values.tolist():
            if c in seen:
                raise RuntimeError(f"cycle {c} is in both {seen[c]} and {f}")
            seen[c] = f
    names = [str(f) for f in files]
    if len(parts) == 1:
        out = parts[0]
    else:
        out = xr.concat(_fill_missing(parts, "cycle"), dim="cycle", data_vars="minimal",
                        coords="minimal", compat="override", combine_attrs="drop_conflicts")
    out = out.sortby("cycle")
    out.attrs["source_files"] = " ".join(names)
    return out
