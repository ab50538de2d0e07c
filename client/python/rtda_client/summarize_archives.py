#!/usr/bin/env python3
"""Markdown table of analysis RMSE and spread (mean over cycles FROM..end, in K) for a set of
analysis archives:  python3 -m rtda_client.summarize_archives run1.h5 run2.h5 ... [--from-cycle 100]"""
import argparse
import os
import sys

import h5py
import numpy as np


def text(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("archives", nargs="+")
    ap.add_argument("--from-cycle", type=int, default=100)
    args = ap.parse_args(argv)
    print("| run | observations | filter | cycles | analysis RMSE (K) | analysis spread (K) "
          "| background RMSE (K) | background spread (K) |")
    print("|---|---|---|---|---|---|---|---|")
    for path in args.archives:
        with h5py.File(path, "r") as f:
            sel = slice(args.from_cycle, None)
            n = f["cycle"].shape[0]
            row = [np.mean(f[v][sel]) for v in
                   ("rmse_analysis", "spread_analysis", "rmse_background", "spread_background")]
            print(f"| {os.path.basename(path)} | {text(f.attrs.get('observations', '?'))} | "
                  f"{text(f.attrs.get('filter', '?'))} | {args.from_cycle}..{n - 1} | "
                  + " | ".join(f"{v:.3f}" for v in row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
