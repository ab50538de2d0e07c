#!/usr/bin/python3
"""Opens the files written by write_sample_files with netCDF4, xarray and h5py and checks
that they read as docs/architecture.md §7 promises: dimension names and sizes, coordinate values,
units/long_name on every variable, root attributes, flag attributes, and the exact values.

Usage: check_netcdf_compat.py DIR   (run with Debian's /usr/bin/python3)

The expected values are the closed-form patterns of write_sample_files.cpp; keep the two in
step. Every value is a multiple of 1/8 or otherwise exact in binary, so comparisons are ==.
"""

import importlib.util
import os
import sys

import h5py
import netCDF4
import numpy as np
import xarray as xr

N = 8
L = 20.0e6
DT = 600.0
PV_UNITS = "m s-1"
# Times are CF: seconds since the run's epoch (model.epoch; the writer's default here).
TIME_UNITS = "seconds since 2000-01-01T00:00:00Z"
FAILURES = []


def check(condition, what):
    if not condition:
        FAILURES.append(what)


def pattern(count):
    s, level, j, i = np.meshgrid(np.arange(count), np.arange(2), np.arange(N), np.arange(N),
                                 indexing="ij")
    return (s * 10000 + level * 1000 + j * N + i) * 0.125


def grid_coordinate():
    return np.arange(N) * L / N


# ---- expected contents, per file ----------------------------------------------------------

def expected_obs():
    i = np.arange(5)
    shock = np.zeros((3, 2, N, N))
    shock[1] = pattern(1)[0]
    return {
        "dims": {"obs": 5, "cycle": 3, "grid_level": 2, "grid_y": N, "grid_x": N},
        "coords": {"cycle": np.arange(3), "grid_level": np.arange(2),
                   "grid_y": grid_coordinate(), "grid_x": grid_coordinate()},
        "vars": {
            "time": (("obs",), 43200.0 * (i % 2), TIME_UNITS),
            "level": (("obs",), i % 2, "1"),
            "x": (("obs",), 1.0e6 * i, "m"),
            "y": (("obs",), 2.0e6 * i, "m"),
            "value": (("obs",), 0.5 * i - 1.0, None),
            "error_sd": (("obs",), 0.25 * (i + 1), None),
            "operator": (("obs",), i % 3, "1"),
            "id": (("obs",), np.uint64(2**63) + i.astype(np.uint64), "1"),
            "cycle_time": (("cycle",), np.array([0.0, 43200.0, 86400.0]), TIME_UNITS),
            "shock_sd": (("cycle",), np.array([0.0, 2.5, 0.0]), PV_UNITS),
            "shock": (("cycle", "grid_level", "grid_y", "grid_x"), shock, PV_UNITS),
        },
        "root": {"file_kind": "observation_set", "experiment": "netcdf-compat",
                 "seed": 0xFEEDFACECAFEBEEF},
    }


def expected_obs_empty():
    empty = np.zeros(0)
    columns = ["time", "level", "x", "y", "value", "error_sd", "operator", "id"]
    variables = {name: (("obs",), empty, None) for name in columns}
    variables["cycle_time"] = (("cycle",), empty, TIME_UNITS)
    variables["shock_sd"] = (("cycle",), empty, PV_UNITS)
    return {
        "dims": {"obs": 0, "cycle": 0},
        "coords": {"cycle": empty},
        "vars": variables,
        "root": {"file_kind": "observation_set", "experiment": "empty", "seed": 0},
        "absent": ["shock"],
    }


def grid_coords():
    return {"level": np.arange(2), "y": grid_coordinate(), "x": grid_coordinate()}


EXPECTED = {
    "state.h5": {
        "dims": {"level": 2, "y": N, "x": N},
        "coords": grid_coords(),
        "vars": {"q": (("level", "y", "x"), pattern(1)[0], PV_UNITS)},
        "root": {"file_kind": "state", "time_seconds": 43200.0},
    },
    "ensemble.h5": {
        "dims": {"member": 3, "level": 2, "y": N, "x": N},
        "coords": {"member": np.arange(3), **grid_coords()},
        "vars": {"q": (("member", "level", "y", "x"), pattern(3), PV_UNITS)},
        "root": {"file_kind": "ensemble", "time_seconds": 86400.0},
    },
    "nature.h5": {
        "dims": {"time": 4, "level": 2, "y": N, "x": N},
        "unlimited": ["time"],
        "coords": {"time": 43200.0 * np.arange(4), **grid_coords()},
        "vars": {"q": (("time", "level", "y", "x"), pattern(4), PV_UNITS)},
        "root": {"file_kind": "nature_run"},
    },
    "observations.h5": expected_obs(),
    "observations_empty.h5": expected_obs_empty(),
}

COMMON_ROOT = {"N": N, "L": L, "dt": DT, "dynamics": "exact",
               "created_by": "write_sample_files"}


# ---- the three readers --------------------------------------------------------------------

def check_netcdf4(path, exp):
    name = os.path.basename(path)
    with netCDF4.Dataset(path) as ds:
        dims = {d: len(v) for d, v in ds.dimensions.items()}
        check(dims == exp["dims"], f"netCDF4 {name}: dimensions {dims} != {exp['dims']}")
        for d in exp.get("unlimited", []):
            check(ds.dimensions[d].isunlimited(), f"netCDF4 {name}: {d} is not unlimited")
        for v in ds.variables.values():
            attrs = v.ncattrs()
            # A set that mixes operators names each one's unit instead (docs/file-formats.md).
            check(("units" in attrs or "units_by_operator" in attrs) and "long_name" in attrs,
                  f"netCDF4 {name}: variable {v.name} lacks units or long_name")
            for a in ("units", "long_name"):
                if a in attrs:
                    check(isinstance(v.getncattr(a), str),
                          f"netCDF4 {name}: {v.name}.{a} is not read as str")
        for c, values in exp["coords"].items():
            var = ds.variables[c]
            check(var.dimensions == (c,), f"netCDF4 {name}: coordinate {c} dims {var.dimensions}")
            check(np.array_equal(var[:], values), f"netCDF4 {name}: coordinate {c} values")
        for v, (vdims, values, units) in exp["vars"].items():
            check(v in ds.variables, f"netCDF4 {name}: variable {v} missing")
            if v not in ds.variables:
                continue
            var = ds.variables[v]
            var.set_auto_mask(False)
            check(var.dimensions == vdims, f"netCDF4 {name}: {v} dims {var.dimensions} != {vdims}")
            check(np.array_equal(var[:], values), f"netCDF4 {name}: {v} values differ")
            if units is not None:
                check(var.units == units, f"netCDF4 {name}: {v} units {var.units!r} != {units!r}")
        for v in exp.get("absent", []):
            check(v not in ds.variables, f"netCDF4 {name}: {v} should be absent")
        for a, value in {**COMMON_ROOT, **exp["root"]}.items():
            check(a in ds.ncattrs(), f"netCDF4 {name}: root attribute {a} missing")
            if a in ds.ncattrs():
                got = ds.getncattr(a)
                check(got == value and type(got) is not bytes,
                      f"netCDF4 {name}: root attribute {a} = {got!r}, expected {value!r}")
        if "operator" in ds.variables:
            op = ds.variables["operator"]
            check(op.flag_meanings == "linear_K arctan identity",
                  f"netCDF4 {name}: operator flag_meanings {op.flag_meanings!r}")
            check(np.array_equal(op.flag_values, [0, 1, 2]),
                  f"netCDF4 {name}: operator flag_values {op.flag_values!r}")
            check(op.flag_values.dtype == op.dtype,
                  f"netCDF4 {name}: flag_values type {op.flag_values.dtype} != {op.dtype}")


def check_xarray(path, exp, engine):
    name = f"{os.path.basename(path)} ({engine})"
    # Raw values here; check_cf.py checks that the times decode to dates.
    with xr.open_dataset(path, engine=engine, decode_times=False) as ds:
        dims = dict(ds.sizes)
        check(dims == exp["dims"], f"xarray {name}: dimensions {dims} != {exp['dims']}")
        for c, values in exp["coords"].items():
            check(c in ds.coords and c in ds.indexes, f"xarray {name}: {c} is not an index coord")
            check(np.array_equal(ds[c].values, values), f"xarray {name}: coordinate {c} values")
        if "obs" in exp["dims"]:
            check("obs" not in ds.variables, f"xarray {name}: obs must be a pure dimension")
        for v, (vdims, values, units) in exp["vars"].items():
            if v not in ds.variables:
                check(False, f"xarray {name}: variable {v} missing")
                continue
            var = ds[v]
            check(var.dims == vdims, f"xarray {name}: {v} dims {var.dims} != {vdims}")
            check(np.array_equal(var.values, values), f"xarray {name}: {v} values differ")
            check(str(var.dtype) != "object", f"xarray {name}: {v} decoded to object")
            if units is not None:
                check(var.attrs.get("units") == units, f"xarray {name}: {v} units")
            check("long_name" in var.attrs, f"xarray {name}: {v} long_name missing")
        for a, value in {**COMMON_ROOT, **exp["root"]}.items():
            check(ds.attrs.get(a) == value,
                  f"xarray {name}: root attribute {a} = {ds.attrs.get(a)!r}, expected {value!r}")
        if "operator" in ds.variables:
            check(ds["operator"].attrs.get("flag_meanings") == "linear_K arctan identity",
                  f"xarray {name}: operator flag_meanings")


def text(value):
    # Fixed-length string attributes (netCDF's NC_CHAR) arrive as bytes in h5py.
    return value.decode() if isinstance(value, bytes) else value


def check_h5py(path, exp):
    name = os.path.basename(path)
    with h5py.File(path, "r") as f:
        for v, (vdims, values, units) in exp["vars"].items():
            if v not in f:
                check(False, f"h5py {name}: dataset {v} missing")
                continue
            ds = f[v]
            check(np.array_equal(ds[()], values), f"h5py {name}: {v} values differ")
            # The attached scale datasets, by path: a pure dimension's scale NAME is netCDF's
            # sentence rather than the dimension name, so compare the datasets' own names.
            attached = tuple(ds.dims[k][0].name.lstrip("/") if len(ds.dims[k]) == 1 else None
                             for k in range(ds.ndim))
            check(attached == vdims, f"h5py {name}: {v} scales {attached} != {vdims}")
            if units is not None:
                check(text(ds.attrs["units"]) == units, f"h5py {name}: {v} units")
        for c, values in exp["coords"].items():
            check(h5py.h5ds.is_scale(f[c].id), f"h5py {name}: {c} is not a dimension scale")
        if "shock" in f:
            check(f["shock"].compression == "gzip", f"h5py {name}: shock is not deflated")
        if "obs" in f:
            check(text(f["obs"].attrs["NAME"]).startswith(
                "This is a netCDF dimension but not a netCDF variable."),
                f"h5py {name}: obs is not a netCDF pure dimension")
        for a, value in {**COMMON_ROOT, **exp["root"]}.items():
            got = text(f.attrs.get(a))
            check(got == value, f"h5py {name}: root attribute {a} = {got!r}, expected {value!r}")


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    directory = sys.argv[1]
    engines = ["netcdf4"]
    # h5netcdf is optional (not a Debian package here); check it only where installed.
    if importlib.util.find_spec("h5netcdf") is not None:
        engines.append("h5netcdf")
    for filename, exp in EXPECTED.items():
        path = os.path.join(directory, filename)
        if not os.path.exists(path):
            FAILURES.append(f"{path}: not written")
            continue
        check_netcdf4(path, exp)
        for engine in engines:
            check_xarray(path, exp, engine)
        check_h5py(path, exp)
    leftovers = sorted(set(os.listdir(directory)) - set(EXPECTED))
    check(not leftovers, f"temporary files left behind: {leftovers}")
    for failure in FAILURES:
        print("FAIL:", failure)
    print(f"checked {len(EXPECTED)} files with netCDF4, xarray ({', '.join(engines)}), h5py: "
          f"{len(FAILURES)} failures")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
