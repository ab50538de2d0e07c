"""Exit 0 when two analysis archives hold the same analyses (mean, spread, and the per-cycle
RMSE/spread diagnostics); used to check 1 rank against R ranks. Bitwise by default; with
--rtol R, |a - b| <= R * max|a| per variable (for paths whose sums depend on the rank count,
such as the surrogate's matrix products over a rank's batch of members)."""
import argparse
import sys

import h5py
import numpy as np

parser = argparse.ArgumentParser()
parser.add_argument("a")
parser.add_argument("b")
parser.add_argument("--rtol", type=float, default=0.0)
parser.add_argument("--also", nargs="*", default=[], help="more diagnostics to compare")
args = parser.parse_args()
a, b = h5py.File(args.a, "r"), h5py.File(args.b, "r")
names = ["mean", "spread", "time", "rmse_background", "rmse_analysis", "spread_background",
         "spread_analysis", "innovation_mean", "innovation_rms"] + args.also
bad = []
worst = 0.0
for name in names:
    x, y = a[name][...], b[name][...]
    if x.shape != y.shape:
        bad.append(f"{name}: shapes {x.shape} and {y.shape}")
        continue
    if args.rtol == 0.0:
        if not np.array_equal(x, y):
            bad.append(f"{name}: differs (max |a-b| = {np.max(np.abs(x - y))})")
        continue
    scale = np.nanmax(np.abs(x)) if np.isfinite(x).any() else 1.0
    diff = np.nanmax(np.abs(x - y)) if np.isfinite(x).any() else 0.0
    if not np.array_equal(np.isnan(x), np.isnan(y)) or diff > args.rtol * scale:
        bad.append(f"{name}: max |a-b| = {diff:.3g} > {args.rtol} * {scale:.3g}")
    worst = max(worst, diff / scale if scale > 0 else 0.0)
if bad:
    print("archives differ:\n  " + "\n  ".join(bad))
    sys.exit(1)
how = "identical" if args.rtol == 0.0 else f"equal within rtol {args.rtol} (worst {worst:.2g})"
print(f"archives {how} over {a['mean'].shape[0]} cycles")
