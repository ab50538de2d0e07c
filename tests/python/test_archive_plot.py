"""open_archive and the field maps on real files: a short `rtda experiment` (N = 32, 4
members, 3 cycles) writes an analysis archive; open_archive reads it (as a file, and as a
directory of archives) with the values h5py reads; two files holding one cycle are refused
naming both; `rtda plot` (which runs `python -m rtda_client plot`) writes PNG maps of one cycle (mean,
spread, error against the nature run); a cycle the archive does not hold is refused naming
the cycles it holds. The service's per-cycle archive is read in
tests/service/python_client_test.py.

  test_archive_plot.py --rtda build/client/rtda --tmp DIR
"""

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np

import rtda_client as rc

PNG = b"\x89PNG\r\n\x1a\n"
START = time.monotonic()


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print(f"ok ({time.monotonic() - START:.1f} s): {what}", flush=True)


def run(cmd, expect=0, timeout=120):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout)
    if expect is not None and r.returncode != expect:
        raise AssertionError(f"{' '.join(map(str, cmd))} exited {r.returncode}, expected "
                             f"{expect}:\n{r.stdout}\n{r.stderr}")
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rtda", required=True)
    ap.add_argument("--tmp", required=True)
    ap.add_argument("--keep", action="store_true", help="keep the files made")
    a = ap.parse_args()
    start = time.monotonic()
    tmp = Path(a.tmp)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    cfg, nature, arch = tmp / "cfg.toml", tmp / "nature.h5", tmp / "run.h5"
    cfg.write_text(f"""[model]
preset = "N32"
fft_planning = "estimate"
fft_wisdom_file = ""
threads = 1
[nature]
seed = 7
spinup_days = 2.0
states = 5
interval_hours = 12.0
[ensemble]
members = 4
[experiment]
observations = "linear"
nature_file = "{nature}"
cycles = 3
statistics_from_cycle = 0
cycle_hours = 12.0
""")
    run([a.rtda, "nature", "--config", cfg, "--out", nature])
    print(f"nature run made ({time.monotonic() - START:.1f} s)", flush=True)
    run([a.rtda, "experiment", "--config", cfg, "--filter", "letkf", "--ranks", "1",
         "--out", arch])

    ds = rc.open_archive(arch)
    check(ds.sizes["cycle"] == 3 and ds["mean"].dims == ("cycle", "level", "y", "x")
          and ds["mean"].shape == (3, 2, 32, 32),
          f"open_archive(file): mean {ds['mean'].dims} {ds['mean'].shape}")
    with h5py.File(arch, "r") as f:
        check(np.array_equal(ds["mean"].values, f["mean"][...])
              and np.array_equal(ds["spread"].values, f["spread"][...])
              and np.array_equal(ds["time"].values, f["time"][...]),
              "open_archive values are the file's (mean, spread, time in model seconds)")
        diag = [k for k in f if f[k].shape == (3,) and k not in ("cycle", "time")]
    check("rmse_analysis" in ds and ds["rmse_analysis"].dims == ("cycle",)
          and np.all(np.isfinite(ds["rmse_analysis"])) and all(d in ds for d in diag),
          f"every diagnostic along cycle ({len(diag)}), rmse_analysis "
          f"{ds['rmse_analysis'].values.round(3).tolist()} K")
    check(ds["cycle"].values.tolist() == [0, 1, 2], "cycles 0, 1, 2")

    d = tmp / "archives"
    d.mkdir()
    shutil.copy(arch, d / "run-a.h5")
    check(rc.open_archive(d)["mean"].equals(ds["mean"]), "open_archive(directory of archives)")
    # Per-cycle files whose diagnostics differ (a diagnostic some cycles do not report): the
    # cycles that lack it read NaN, the others their values.
    split = tmp / "split"
    split.mkdir()
    for c in range(3):
        one = ds.isel(cycle=[c])
        if c == 1:
            one = one.drop_vars("rmse_background")
        one.to_netcdf(split / f"analysis-{c}.h5")
    joined = rc.open_archive(split)
    rb = joined["rmse_background"].values
    check(joined["cycle"].values.tolist() == [0, 1, 2] and np.isnan(rb[1])
          and rb[0] == ds["rmse_background"].values[0] and rb[2] == ds["rmse_background"].values[2]
          and joined["mean"].equals(ds["mean"]),
          "per-cycle files, one without rmse_background: NaN for that cycle only")
    shutil.copy(arch, d / "run-b.h5")
    try:
        rc.open_archive(d)
        raise AssertionError("two files with the same cycles were concatenated")
    except RuntimeError as e:
        check("cycle 0 is in both" in str(e) and "run-a.h5" in str(e) and "run-b.h5" in str(e),
              f"the same cycle in two files is refused: {e}")
    try:
        rc.open_archive(tmp / "nowhere")
        raise AssertionError("a missing path was read")
    except FileNotFoundError as e:
        check("nowhere" in str(e), f"a missing archive: {e}")

    # rtda plot runs python -m rtda_client plot with the interpreter it is given.
    m2 = tmp / "map-2.png"
    r = run([a.rtda, "plot", "--archive", arch, "--cycle", 2, "--out", m2, "--truth", nature,
             "--python", sys.executable])
    check(m2.read_bytes()[:8] == PNG and m2.stat().st_size > 20000 and "wrote" in r.stdout,
          f"rtda plot wrote a PNG ({m2.stat().st_size} bytes)")
    r = run([a.rtda, "plot", "--archive", arch, "--cycle", 9, "--out", tmp / "x.png",
             "--python", sys.executable], expect=1)
    check("--cycle 9" in r.stderr and "0..2" in r.stderr and not (tmp / "x.png").exists(),
          f"a cycle not in the archive is refused: {r.stderr.strip().splitlines()[0]}")
    import matplotlib
    matplotlib.use("Agg")
    from rtda_client.maps import plot_fields, select_cycle
    fig = plot_fields(select_cycle(ds, 0), truth=rc.NatureRun(str(nature)).state_at(
        float(ds["time"][0])))
    check(len(fig.axes) == 2 * 4 + 8, f"maps of mean, spread, error, truth on both levels "
          f"({len(fig.axes)} axes with colour bars)")
    if "--keep" not in sys.argv:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"PASS ({time.monotonic() - start:.1f} s)")


if __name__ == "__main__":
    main()
