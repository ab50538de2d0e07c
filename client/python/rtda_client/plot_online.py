#!/usr/bin/env python3
"""Per-cycle comparison of forecast models in the cycle (docs/surrogate.md, online adaptation).

    python3 -m rtda_client.plot_online frozen.h5 online.h5 physics.h5 --label frozen --label online \\
        --label physics --out online.png [--title TEXT] [--from-cycle 20]

Top: background (12-hour forecast) RMSE per cycle; bottom: analysis RMSE per cycle, both in
K against the archive's truth. Archives of an adapting surrogate (diagnostic
surrogate_rollbacks) get a tick at every rollback. The legend gives each run's mean over
cycles from --from-cycle on. Uses Debian's python3-h5py, numpy and matplotlib.
"""
import argparse
import os
import sys

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("archives", nargs="+")
    ap.add_argument("--label", action="append")
    ap.add_argument("--out", required=True)
    ap.add_argument("--title", default="")
    ap.add_argument("--from-cycle", type=int, default=20)
    args = ap.parse_args(argv)
    labels = args.label or [os.path.splitext(os.path.basename(p))[0] for p in args.archives]
    if len(labels) != len(args.archives):
        ap.error("give one --label per archive")
    fig, axes = plt.subplots(2, 1, figsize=(9, 6.5), sharex=True)
    for path, label in zip(args.archives, labels):
        with h5py.File(path, "r") as f:
            cyc = f["cycle"][...]
            sel = cyc >= args.from_cycle
            for ax, name in zip(axes, ["rmse_background", "rmse_analysis"]):
                v = f[name][...]
                ax.plot(cyc, v, lw=1.2, label=f"{label} (mean {np.nanmean(v[sel]):.2f} K)")
            if "surrogate_rollbacks" in f:
                rb = f["surrogate_rollbacks"][...]
                at = cyc[1:][np.diff(rb) > 0]
                for c in at:
                    axes[0].axvline(c, color="grey", lw=0.6, ls=":")
    axes[0].set_ylabel("background RMSE (K)")
    axes[1].set_ylabel("analysis RMSE (K)")
    axes[1].set_xlabel("cycle (12 h)")
    for ax in axes:
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    if args.title:
        axes[0].set_title(args.title, fontsize=10)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
