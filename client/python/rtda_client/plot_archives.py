#!/usr/bin/env python3
"""Plots of rtda analysis archives (`rtda experiment --out run.h5`).

    python3 -m rtda_client.plot_archives run-letkf.h5 run-ensf.h5 [--label LETKF --label EnSF] --out-dir plots/

Writes, into --out-dir:
  rmse_spread.png   analysis and background RMSE (solid) and spread (dashed) per cycle, in K
  error_spectra.png analysis-error power by total wavenumber, averaged over the unshocked
                    cycles from --from-cycle on (the truth is read from the archive's nature
                    run); with --members archives (experiment.store_members = true) also the
                    spread spectrum, i.e. the ensemble-perturbation power.
Uses Debian's python3-h5py, python3-numpy and python3-matplotlib.
"""
import argparse
import os
import sys

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def attr_text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def kelvin_per_pv(f):
    return float(f.attrs["f"]) * float(f.attrs["theta0"]) / float(f.attrs["g"])


def shell_spectrum(field):
    """Power of a (level, y, x) field per integer total wavenumber, summed over levels."""
    n = field.shape[-1]
    spec = np.fft.fft2(field, axes=(-2, -1)) / (n * n)
    power = np.sum(np.abs(spec) ** 2, axis=0)
    k = np.fft.fftfreq(n, 1.0 / n)
    kk = np.sqrt(k[None, :] ** 2 + k[:, None] ** 2)
    shells = np.rint(kk).astype(int)
    out = np.bincount(shells.ravel(), weights=power.ravel())
    return out[: n // 2 + 1]


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("archives", nargs="+")
    ap.add_argument("--label", action="append", help="one per archive (default: file name)")
    ap.add_argument("--out-dir", default=".")
    ap.add_argument("--from-cycle", type=int, default=100)
    args = ap.parse_args(argv)
    labels = args.label or [os.path.splitext(os.path.basename(p))[0] for p in args.archives]
    if len(labels) != len(args.archives):
        ap.error("give one --label per archive")
    os.makedirs(args.out_dir, exist_ok=True)

    fig, ax = plt.subplots(figsize=(9, 4.5))
    for path, label in zip(args.archives, labels):
        with h5py.File(path, "r") as f:
            cyc = f["cycle"][...]
            line, = ax.plot(cyc, f["rmse_analysis"][...], label=f"{label} analysis RMSE")
            ax.plot(cyc, f["spread_analysis"][...], "--", color=line.get_color(),
                    label=f"{label} analysis spread")
            ax.plot(cyc, f["rmse_background"][...], ":", color=line.get_color(), alpha=0.6,
                    label=f"{label} background RMSE")
    ax.set_xlabel("cycle (12 h)")
    ax.set_ylabel("K")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(os.path.join(args.out_dir, "rmse_spread.png"), dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for path, label in zip(args.archives, labels):
        with h5py.File(path, "r") as f:
            s = kelvin_per_pv(f)
            nature_path = attr_text(f.attrs.get("nature_file", ""))
            if not nature_path or not os.path.exists(nature_path):
                print(f"{path}: nature run '{nature_path}' not found; no error spectrum",
                      file=sys.stderr)
                continue
            shock = f["shock_sd"][...]
            times = f["time"][...]
            with h5py.File(nature_path, "r") as nat:
                ntimes = nat["time"][...]
                err = None
                count = 0
                for c in range(args.from_cycle, len(times)):
                    if shock[c] > 0:
                        continue  # the truth the observations saw included a shock field
                    idx = int(np.argmin(np.abs(ntimes - times[c])))
                    e = shell_spectrum(s * (f["mean"][c] - nat["q"][idx]))
                    err = e if err is None else err + e
                    count += 1
            if count == 0:
                continue
            k = np.arange(len(err))
            line, = ax.loglog(k[1:], err[1:] / count, label=f"{label} error")
            if "q" in f:
                spr = None
                for c in range(args.from_cycle, len(times)):
                    members = f["q"][c]
                    pert = members - members.mean(axis=0)
                    p = sum(shell_spectrum(s * m) for m in pert) / (members.shape[0] - 1)
                    spr = p if spr is None else spr + p
                ax.loglog(k[1:], spr[1:] / (len(times) - args.from_cycle), "--",
                          color=line.get_color(), label=f"{label} spread")
    ax.set_xlabel("total wavenumber")
    ax.set_ylabel("power (K$^2$)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(args.out_dir, "error_spectra.png"), dpi=120)
    plt.close(fig)
    print(f"wrote {args.out_dir}/rmse_spread.png and {args.out_dir}/error_spectra.png")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
