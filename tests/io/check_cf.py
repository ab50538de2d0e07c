#!/usr/bin/python3
"""Checks rtda's files against the CF rules docs/file-formats.md claims for them.

Usage: check_cf.py FILE...   (Debian's /usr/bin/python3; needs netCDF4, xarray and the
udunits2 program of Debian's udunits-bin)

Rules (docs/file-formats.md, "CF conventions"):
  - the root attribute Conventions is "CF-1.8";
  - every variable has `units` that UDUNITS-2 accepts, except an observation set's value and
    error_sd when it mixes operators: they name each operator's unit in units_by_operator;
  - time variables (time, cycle_time) have units "seconds since <instant>", standard_name
    time and calendar standard, and xarray decodes them to dates;
  - standard_name values come from the CF table (the few rtda uses are listed below);
  - x, y and time coordinate variables carry axis X, Y and T; member is a realization;
  - every name in a `coordinates` attribute is a variable whose dimensions are a subset of
    the variable's;
  - an observation set is a discrete sampling geometry: featureType point, and its data
    columns name time, x and y in `coordinates`.
Exits 1 with one line per broken rule.
"""

import re
import subprocess
import sys

import netCDF4
import numpy as np
import xarray as xr

# The CF standard names rtda writes (CF standard name table, version 79).
STANDARD_NAMES = {"time", "projection_x_coordinate", "projection_y_coordinate", "altitude",
                  "realization"}
TIME_UNITS = re.compile(r"^seconds since \d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?"
                        r"\s*(Z|UTC|[+-]\d{2}(:?\d{2})?)?$")
AXIS = {"x": "X", "y": "Y", "time": "T"}
FAILURES = []
_units_seen = {}


def fail(what):
    FAILURES.append(what)


def udunits_accepts(units):
    if units not in _units_seen:
        r = subprocess.run(["udunits2", "-H", units, "-W", ""], capture_output=True, text=True,
                           stdin=subprocess.DEVNULL, timeout=30)
        _units_seen[units] = r.returncode == 0 and "Don't recognize" not in r.stdout + r.stderr
    return _units_seen[units]


def check_file(path):
    with netCDF4.Dataset(path) as ds:
        root = {a: ds.getncattr(a) for a in ds.ncattrs()}
        if root.get("Conventions") != "CF-1.8":
            fail(f"{path}: Conventions = {root.get('Conventions')!r}, expected 'CF-1.8'")
        is_obs = root.get("file_kind") == "observation_set"
        if is_obs and root.get("featureType") != "point":
            fail(f"{path}: an observation set needs featureType = 'point', "
                 f"found {root.get('featureType')!r}")
        for name, var in ds.variables.items():
            attrs = {a: var.getncattr(a) for a in var.ncattrs()}
            where = f"{path}: variable {name}"
            if "units" in attrs:
                if not udunits_accepts(attrs["units"]):
                    fail(f"{where}: units {attrs['units']!r} are not UDUNITS-2 units")
            elif not (is_obs and name in ("value", "error_sd") and "units_by_operator" in attrs):
                fail(f"{where}: no units")
            if name in ("time", "cycle_time"):
                units = attrs.get("units", "")
                if not TIME_UNITS.match(units):
                    fail(f"{where}: time units {units!r}, expected 'seconds since <instant>'")
                if attrs.get("standard_name") != "time":
                    fail(f"{where}: standard_name {attrs.get('standard_name')!r}, expected 'time'")
                if attrs.get("calendar") != "standard":
                    fail(f"{where}: calendar {attrs.get('calendar')!r}, expected 'standard'")
            sn = attrs.get("standard_name")
            if sn is not None and sn not in STANDARD_NAMES:
                fail(f"{where}: standard_name {sn!r} is not one rtda claims from the CF table")
            is_coordinate = var.dimensions == (name,)
            if is_coordinate and name in AXIS and attrs.get("axis") != AXIS[name]:
                fail(f"{where}: coordinate axis {attrs.get('axis')!r}, expected {AXIS[name]!r}")
            if is_coordinate and name == "member" and sn != "realization":
                fail(f"{where}: the member coordinate needs standard_name 'realization'")
            axis = attrs.get("axis")
            if axis is not None and axis not in ("X", "Y", "Z", "T"):
                fail(f"{where}: axis {axis!r}")
            for c in str(attrs.get("coordinates", "")).split():
                if c not in ds.variables:
                    fail(f"{where}: coordinates names {c!r}, which is no variable")
                elif not set(ds.variables[c].dimensions) <= set(var.dimensions):
                    fail(f"{where}: coordinate {c} has dimensions {ds.variables[c].dimensions} "
                         f"outside {var.dimensions}")
            if is_obs and name in ("value", "error_sd", "operator"):
                named = set(str(attrs.get("coordinates", "")).split())
                if not {"time", "x", "y"} <= named:
                    fail(f"{where}: coordinates {attrs.get('coordinates')!r} must name time, x "
                         "and y")
    # CF-aware reading: the times decode to dates.
    with xr.open_dataset(path) as ds:
        for name in ("time", "cycle_time"):
            if name in ds.variables and ds[name].size > 0:
                if not np.issubdtype(ds[name].dtype, np.datetime64):
                    fail(f"{path}: xarray decodes {name} to {ds[name].dtype}, not to dates")


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    for path in sys.argv[1:]:
        check_file(path)
    for f in FAILURES:
        print("CF:", f)
    print(f"check_cf: {len(sys.argv) - 1} files, {len(FAILURES)} problems")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
