#!/usr/bin/python3
"""Compare variable ``q`` of two HDF5 files.

  /usr/bin/python3 tests/python/compare_fields.py A.h5 B.h5 --rtol 1e-9

B is the reference: relative error = max|a - b| / max|b|; the RMS relative
error is rms(a - b) / rms(b).  Exit status 0 when the relative error is
<= rtol, 1 when it is larger (or the fields are not comparable), with the
numbers printed either way.
"""

import argparse
import sys

import numpy as np


def load(path, var):
    import h5py
    with h5py.File(path, "r") as fh:
        if var not in fh:
            raise KeyError("%s: no variable %r" % (path, var))
        return np.array(fh[var][...], dtype=np.float64)


def compare(a, b):
    """Return (max_abs, rel, rms_rel) with b as the reference."""
    d = a - b
    max_abs = float(np.max(np.abs(d))) if d.size else 0.0
    ref = float(np.max(np.abs(b))) if b.size else 0.0
    rel = max_abs / ref if ref > 0 else (0.0 if max_abs == 0 else np.inf)
    rms_b = float(np.sqrt(np.mean(b * b))) if b.size else 0.0
    rms_d = float(np.sqrt(np.mean(d * d))) if d.size else 0.0
    rms_rel = rms_d / rms_b if rms_b > 0 else (0.0 if rms_d == 0 else np.inf)
    return max_abs, rel, rms_rel


def main(argv=None):
    ap = argparse.ArgumentParser(description="compare q of two HDF5 files")
    ap.add_argument("a", help="candidate file")
    ap.add_argument("b", help="reference file")
    ap.add_argument("--rtol", type=float, default=1e-9)
    ap.add_argument("--var", default="q", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    try:
        a = load(args.a, args.var)
        b = load(args.b, args.var)
    except (OSError, KeyError) as exc:
        print("compare_fields: FAIL: %s" % exc)
        return 1
    if a.shape != b.shape:
        print("compare_fields: FAIL: shape mismatch %s vs %s"
              % (a.shape, b.shape))
        return 1
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        print("compare_fields: FAIL: non-finite values (A: %d, B: %d)"
              % (np.count_nonzero(~np.isfinite(a)),
                 np.count_nonzero(~np.isfinite(b))))
        return 1
    max_abs, rel, rms_rel = compare(a, b)
    msg = ("max abs diff = %.6e, relative error (max|a-b|/max|b|) = %.6e, "
           "RMS relative error = %.6e, rtol = %.1e"
           % (max_abs, rel, rms_rel, args.rtol))
    if rel > args.rtol:
        print("compare_fields: FAIL: " + msg)
        return 1
    print("compare_fields: OK: " + msg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
