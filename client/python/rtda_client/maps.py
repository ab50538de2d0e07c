"""Field maps of one analysis: the ensemble mean, its spread and, given the truth, the error
(mean - truth), one row per level, in K where the file says how (f * theta0 / g from the root
attributes), else in the field's units. The Lorenz-96 ring (y of length 1) is drawn as lines.
Uses matplotlib (Debian: python3-matplotlib); the `plot` command draws with Agg.

    python3 -m rtda_client plot --archive rtda-data/analyses --cycle 3 --out map.png \\
        [--truth nature.h5]
"""

from __future__ import annotations

from typing import Optional

import numpy as np

LEVEL_NAMES = {0: "surface", 1: "lid"}


def kelvin_per_unit(attrs) -> Optional[float]:
    """f * theta0 / g from a file's root attributes (K per m s-1 of boundary PV), or None."""
    try:
        return float(np.ravel(attrs["f"])[0]) * float(np.ravel(attrs["theta0"])[0]) / \
            float(np.ravel(attrs["g"])[0])
    except (KeyError, TypeError, ValueError, IndexError):
        return None


def select_cycle(archive, cycle: int):
    """The analysis of `cycle` from an archive Dataset (open_archive), with a clear error
    naming the cycles it holds."""
    cycles = archive["cycle"].values.tolist()
    if cycle not in cycles:
        span = f"{min(cycles)}..{max(cycles)}" if cycles else "none"
        raise ValueError(f"--cycle {cycle}: the archive holds cycles {span} "
                         f"({len(cycles)} in all)")
    return archive.sel(cycle=cycle)


def plot_fields(analysis, truth=None, out: Optional[str] = None, title: Optional[str] = None,
                scale: Optional[float] = None, units: Optional[str] = None):
    """Maps of `analysis` (a Dataset with mean and spread (level, y, x): one cycle of an
    archive, or a subscription's Dataset) and, with `truth` (an array (level, y, x) in the
    same units as the mean), of the error. `scale` converts to the plotted units (default: K
    per m s-1 from the attributes, else 1). Saves a PNG to `out` if given; returns the
    Figure."""
    import matplotlib.pyplot as plt

    for v in ("mean", "spread"):
        if v not in analysis:
            raise ValueError(f"the analysis has no {v!r} (subscribe to rtda.analysis, not "
                             "rtda.summary)")
    mean = np.asarray(analysis["mean"].values, dtype=np.float64)
    spread = np.asarray(analysis["spread"].values, dtype=np.float64)
    if mean.ndim != 3:
        raise ValueError(f"mean has dimensions {analysis['mean'].dims}, expected "
                         "(level, y, x) of one cycle")
    if scale is None:
        scale = kelvin_per_unit(analysis.attrs)
        if scale is not None:
            units = units or "K"
        else:
            scale = 1.0
            units = units or analysis["mean"].attrs.get("units", "")
    panels = [("analysis mean", mean * scale, "RdBu_r"), ("spread", spread * scale, "viridis")]
    if truth is not None:
        truth = np.asarray(truth, dtype=np.float64)
        if truth.shape != mean.shape:
            raise ValueError(f"truth has shape {truth.shape}, the analysis {mean.shape}")
        panels.append(("error (mean - truth)", (mean - truth) * scale, "RdBu_r"))
        panels.append(("truth", truth * scale, "RdBu_r"))
    levels = mean.shape[0]
    ring = mean.shape[1] == 1
    fig, axes = plt.subplots(levels, len(panels), squeeze=False,
                             figsize=(3.4 * len(panels), 3.0 * levels if not ring else 2.6),
                             constrained_layout=True)
    for lev in range(levels):
        for j, (name, field, cmap) in enumerate(panels):
            ax = axes[lev][j]
            f = field[lev]
            if ring:
                ax.plot(f[0])
                ax.set_xlabel("x index")
                ax.set_title(f"{name} ({units})", fontsize=9)
                continue
            if cmap == "RdBu_r":
                lim = float(np.nanmax(np.abs(f))) or 1.0
                im = ax.imshow(f, origin="lower", cmap=cmap, vmin=-lim, vmax=lim)
            else:
                im = ax.imshow(f, origin="lower", cmap=cmap, vmin=0)
            ax.set_title(f"{name}, {LEVEL_NAMES.get(lev, lev)}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
            fig.colorbar(im, ax=ax, shrink=0.8, label=units)
    if title is None and "cycle" in analysis.coords:
        title = f"cycle {int(analysis['cycle'])}"
        if "time" in analysis.variables:
            title += f", valid {float(analysis['time']) / 86400:g} d"
    if title:
        fig.suptitle(title)
    if out is not None:
        fig.savefig(out, dpi=100)
        plt.close(fig)
    return fig


def plot_archive_cycle(archive_path, cycle: int, out: str, truth_path: Optional[str] = None,
                       title: Optional[str] = None) -> str:
    """The map of one cycle of the archive under `archive_path` (open_archive), with the error
    against the nature run `truth_path` at the cycle's valid time; writes `out` (PNG)."""
    from .archive import open_archive
    from .files import NatureRun
    an = select_cycle(open_archive(archive_path), cycle)
    truth = None
    if truth_path:
        nature = NatureRun(truth_path)
        try:
            truth = nature.state_at(float(an["time"]))
        finally:
            nature.close()
    plot_fields(an, truth=truth, out=out, title=title)
    return out
