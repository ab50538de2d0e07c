"""Exit 0 when two analysis archives hold bitwise identical analyses (mean, spread, and the
per-cycle RMSE/spread diagnostics); used to check 1 rank against R ranks."""
import sys

import h5py
import numpy as np

a, b = (h5py.File(p, "r") for p in sys.argv[1:3])
names = ["mean", "spread", "time", "rmse_background", "rmse_analysis", "spread_background",
         "spread_analysis", "innovation_mean", "innovation_rms"]
bad = []
for name in names:
    x, y = a[name][...], b[name][...]
    if x.shape != y.shape or not np.array_equal(x, y):
        diff = np.max(np.abs(x - y)) if x.shape == y.shape else "shape"
        bad.append(f"{name}: differs (max |a-b| = {diff})")
if bad:
    print("archives differ:\n  " + "\n  ".join(bad))
    sys.exit(1)
print(f"archives identical over {a['mean'].shape[0]} cycles")
