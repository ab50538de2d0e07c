#!/usr/bin/python3
"""Tests of the `rtda` command-line tool from the outside: it is run as a user runs it, and
every file it writes is opened with the Python stack users read them with (xarray on the
netcdf4 engine, h5py, netCDF4-python), as docs/architecture.md §7 promises.

Usage: cli_test.py RTDA WORKDIR CASE   (one CTest test per case; run with /usr/bin/python3)
       cli_test.py --list              (the case names, for CMake)

Each case runs in its own fresh WORKDIR and makes the small inputs it needs (a nature run of
N = 32 takes well under a second). Comparisons said to be bitwise compare the float64 bit
patterns, so even -0.0 against 0.0 counts as a difference.
"""

import os
import re
import shutil
import subprocess
import sys

CASES = {}


def case(fn):
    CASES[fn.__name__] = fn
    return fn


class Failure(Exception):
    pass


def check(condition, what):
    if not condition:
        raise Failure(what)


# A short nature run: one day of spin-up, then 3 states 12 h apart, on the N = 32 grid
# (dt = 2400 s from the N32 preset).
N = 32
L = 20.0e6
DT_N32 = 2400.0
SHORT_NATURE = ["--set", "model.N=32", "--set", "nature.spinup_days=1", "--set",
                "nature.states=3"]
# s = f·θ₀/g with the default f, θ₀ and g (docs/science.md §2).
KELVIN_PER_PV = 1.0e-4 * 300.0 / 9.8


class Rtda:
    """Runs the binary in the work directory and keeps what it printed for the failure
    message."""

    def __init__(self, exe, workdir):
        self.exe = exe
        self.dir = workdir

    def path(self, name):
        return os.path.join(self.dir, name)

    def run(self, *args, env=None):
        full_env = dict(os.environ)
        full_env.update(env or {})
        p = subprocess.run([self.exe, *args], cwd=self.dir, env=full_env, capture_output=True,
                           text=True, timeout=60)
        sys.stdout.write(f"$ rtda {' '.join(args)}\n[exit {p.returncode}]\n{p.stdout}")
        sys.stdout.write("".join("  stderr| " + line + "\n" for line in p.stderr.splitlines()
                                 if "%" not in line))  # progress-bar lines are noise here
        return p

    def ok(self, *args, env=None):
        p = self.run(*args, env=env)
        check(p.returncode == 0, f"rtda {' '.join(args)} exited {p.returncode}: {p.stderr}")
        return p

    def fails(self, *args, naming, out=None):
        """The command exits non-zero with a one-line-ish message on stderr that contains
        every string in `naming`, does not crash, and leaves no output file behind."""
        p = self.run(*args)
        check(p.returncode != 0, f"rtda {' '.join(args)} succeeded; expected an error")
        check(0 < p.returncode < 128, f"exit {p.returncode}: a crash, not an error")
        for bad in ("terminate called", "Traceback", "Aborted", "what():"):
            check(bad not in p.stderr, f"stderr shows a crash ({bad!r}): {p.stderr}")
        for word in naming:
            check(word in p.stderr, f"error message does not name {word!r}: {p.stderr!r}")
        if out is not None:
            leftovers = [f for f in os.listdir(self.dir) if f.startswith(out)]
            check(not leftovers, f"a failed command left {leftovers} behind")
        return p

    def nature(self, name="nature.h5", extra=()):
        self.ok("nature", "--out", name, *SHORT_NATURE, *extra)
        return self.path(name)


def open_xr(path):
    import xarray as xr
    return xr.open_dataset(path, engine="netcdf4", decode_times=False)


def bits(a):
    import numpy as np
    return np.ascontiguousarray(np.asarray(a, dtype=np.float64)).view(np.uint64)


def bitwise_equal(a, b):
    import numpy as np
    return a.shape == b.shape and np.array_equal(bits(a), bits(b))


def how_different(a, b):
    import numpy as np
    if a.shape != b.shape:
        return f"shapes {a.shape} and {b.shape}"
    return (f"{int((bits(a) != bits(b)).sum())} of {a.size} values differ, "
            f"by up to {float(np.abs(a - b).max()):.3g}")


def check_grid_coords(ds, where):
    import numpy as np
    check(ds.sizes["level"] == 2 and ds.sizes["y"] == N and ds.sizes["x"] == N,
          f"{where}: grid sizes {dict(ds.sizes)}")
    check(np.array_equal(ds["level"].values, [0, 1]), f"{where}: level {ds['level'].values}")
    # x = i·L/N exactly: L/N = 625 km is exact in binary.
    for c in ("x", "y"):
        check(np.array_equal(ds[c].values, np.arange(N) * L / N), f"{where}: {c} coordinate")
        check(ds[c].attrs.get("units") == "m", f"{where}: {c} units {ds[c].attrs}")
    check(ds["q"].attrs.get("units") == "m s-1", f"{where}: q units {ds['q'].attrs}")
    check("long_name" in ds["q"].attrs, f"{where}: q has no long_name")


def check_model_attrs(ds, where, kind):
    a = ds.attrs
    check(a.get("file_kind") == kind, f"{where}: file_kind {a.get('file_kind')!r}, want {kind!r}")
    check(int(a.get("N", -1)) == N, f"{where}: N attribute {a.get('N')}")
    check(float(a.get("L", -1)) == L, f"{where}: L attribute {a.get('L')}")
    check(float(a.get("dt", -1)) == DT_N32, f"{where}: dt attribute {a.get('dt')}")
    check(a.get("dynamics") == "sqgturb", f"{where}: dynamics attribute {a.get('dynamics')!r}")
    for key in ("H", "U", "f", "nsq", "g", "theta0", "tdiab", "diff_order", "diff_efold",
                "symmetric", "dealias", "rtda_version", "created_by"):
        check(key in a, f"{where}: root attribute {key} missing")


def write_ensemble_netcdf4(state_paths, out_path):
    """An ensemble file in the layout of docs/architecture.md §7, written by netCDF4-python alone:
    q(member, level, y, x) stacking the state files' q, coordinate variables (dimension
    scales) on every dimension, and the first state's root attributes with
    file_kind = "ensemble"."""
    import netCDF4
    import numpy as np
    sources = [netCDF4.Dataset(p, "r") for p in state_paths]
    try:
        first = sources[0]
        with netCDF4.Dataset(out_path, "w", format="NETCDF4") as nc:
            for name in first.ncattrs():
                nc.setncattr(name, first.getncattr(name))
            nc.setncattr("file_kind", "ensemble")
            nc.setncattr("created_by", "tests/cli/cli_test.py (netCDF4-python)")
            nc.createDimension("member", len(sources))
            member = nc.createVariable("member", "i4", ("member",))
            member[:] = np.arange(len(sources), dtype=np.int32)
            member.setncatts({"units": "1", "long_name": "ensemble member"})
            for dim in ("level", "y", "x"):
                nc.createDimension(dim, first.dimensions[dim].size)
                src = first.variables[dim]
                var = nc.createVariable(dim, src.dtype, (dim,))
                var[:] = src[:]
                var.setncatts({k: src.getncattr(k) for k in src.ncattrs()})
            q_src = first.variables["q"]
            q = nc.createVariable("q", "f8", ("member", "level", "y", "x"))
            q.setncatts({k: q_src.getncattr(k) for k in q_src.ncattrs()})
            for m, src in enumerate(sources):
                q[m] = src.variables["q"][:]
    finally:
        for s in sources:
            s.close()


def member_states(rtda, nature_path, count):
    """State files member_K.h5 holding nature states 0..count-1 (forecast of 0 steps)."""
    paths = []
    for k in range(count):
        name = f"member_{k}.h5"
        rtda.ok("forecast", "--in", nature_path, "--nature-index", str(k), "--steps", "0", "--out",
                name)
        paths.append(rtda.path(name))
    return paths


# ---- files and their layout ------------------------------------------------------------------

@case
def nature_file_reads_in_xarray_with_time_level_y_x(rtda):
    import numpy as np
    p = rtda.ok("nature", "--out", "nature.h5", *SHORT_NATURE)
    check("wrote" in p.stdout and "climatology" in p.stdout, f"summary missing: {p.stdout}")
    check(not [f for f in os.listdir(rtda.dir) if f.endswith(".partial")],
          "a .partial file was left behind")
    ds = open_xr(rtda.path("nature.h5"))
    check(ds["q"].dims == ("time", "level", "y", "x"), f"q dims {ds['q'].dims}")
    check(ds.sizes["time"] == 3, f"time size {ds.sizes['time']}")
    check_grid_coords(ds, "nature.h5")
    # Kept states start after the 1-day spin-up, 12 h apart.
    check(np.array_equal(ds["time"].values, 86400.0 + 43200.0 * np.arange(3)),
          f"time {ds['time'].values}")
    check(ds["time"].attrs.get("units") == "seconds since 2000-01-01T00:00:00Z",
          f"time units {ds['time'].attrs}")
    check_model_attrs(ds, "nature.h5", "nature_run")
    q = ds["q"].values
    check(np.isfinite(q).all(), "q has non-finite values")
    check(q.std() > 100.0, f"q std {q.std()} m/s: the run is flat")


@case
def observe_linear_shocks_file_reads_in_xarray(rtda):
    import numpy as np
    nature = rtda.nature()
    p = rtda.ok("observe", "--nature", nature, "--experiment", "linear-shocks", "--out", "obs.h5")
    check("wrote" in p.stdout, p.stdout)
    ds = open_xr(rtda.path("obs.h5"))
    nn = N * N
    check(ds.sizes["obs"] == 3 * 2 * nn and ds.sizes["cycle"] == 3, f"sizes {dict(ds.sizes)}")
    for v in ("time", "level", "x", "y", "value", "error_sd", "operator", "id"):
        check(ds[v].dims == ("obs",), f"{v} dims {ds[v].dims}")
        check("units" in ds[v].attrs and "long_name" in ds[v].attrs, f"{v} attrs {ds[v].attrs}")
    check(ds["shock"].dims == ("cycle", "grid_level", "grid_y", "grid_x"),
          f"shock dims {ds['shock'].dims}")
    op = ds["operator"]
    check(list(op.attrs.get("flag_values", [])) == [0, 1, 2], f"flag_values {op.attrs}")
    check(op.attrs.get("flag_meanings") == "linear_K arctan identity", f"flags {op.attrs}")
    check((op.values == 0).all(), "experiment 2 uses linear_K everywhere")
    check((ds["error_sd"].values == 1.0).all(), "sigma_o = 1 K")
    check(ds.attrs.get("experiment") == "linear-shocks", f"experiment {ds.attrs}")
    check(int(ds.attrs.get("seed")) == 1, f"seed {ds.attrs.get('seed')}")
    check_model_attrs(ds, "obs.h5", "observation_set")

    truth = open_xr(nature)
    check(np.array_equal(ds["cycle_time"].values, truth["time"].values),
          "cycle_time != nature time")
    ids = ds["id"].values
    check(ds["id"].dtype == np.uint64, f"id dtype {ds['id'].dtype}")
    check(np.array_equal(np.sort(ids), np.arange(3 * 2 * nn)), "ids are not 0..C·2N²-1")
    c, within = ids // (2 * nn), ids % (2 * nn)
    lev, j, i = within // nn, (within % nn) // N, within % N
    check(np.array_equal(ds["level"].values, lev), "level != id's level")
    check(np.array_equal(ds["x"].values, i * L / N), "x != i·L/N")
    check(np.array_equal(ds["y"].values, j * L / N), "y != j·L/N")
    check(np.array_equal(ds["time"].values, truth["time"].values[c]), "time != cycle's time")

    shock_sd = ds["shock_sd"].values
    check(shock_sd[0] == 0, "cycle 0 is never shocked")
    shock = ds["shock"].values
    for k in range(3):
        if shock_sd[k] == 0:
            check((shock[k] == 0).all(), f"cycle {k}: no shock but a non-zero field")
    seen = truth["q"].values[c, lev, j, i] + shock[c, lev, j, i]
    err = ds["value"].values - KELVIN_PER_PV * seen
    # 6144 N(0, 1 K) errors: mean within 4/sqrt(n) = 0.05 K, sd within 4/sqrt(2n) = 0.036 K.
    check(abs(err.mean()) < 4 / np.sqrt(err.size), f"error mean {err.mean()}")
    check(abs(err.std() - 1) < 4 / np.sqrt(2 * err.size), f"error sd {err.std()}")


@case
def forecast_from_a_nature_index_with_zero_steps_writes_that_state(rtda):
    import numpy as np
    nature = rtda.nature()
    rtda.ok("forecast", "--in", nature, "--nature-index", "2", "--steps", "0", "--out", "s.h5")
    ds, truth = open_xr(rtda.path("s.h5")), open_xr(nature)
    check(ds["q"].dims == ("level", "y", "x"), f"q dims {ds['q'].dims}")
    check_grid_coords(ds, "s.h5")
    check_model_attrs(ds, "s.h5", "state")
    check(float(ds.attrs["time_seconds"]) == truth["time"].values[2],
          f"time_seconds {ds.attrs['time_seconds']}")
    check(bitwise_equal(ds["q"].values, truth["q"].values[2]),
          "q != nature state 2: " + how_different(ds["q"].values, truth["q"].values[2]))
    check(not np.isnan(ds["q"].values).any(), "NaN in q")


@case
def forecast_of_zero_steps_returns_a_state_unchanged(rtda):
    nature = rtda.nature()
    (state,) = member_states(rtda, nature, 1)
    rtda.ok("forecast", "--in", state, "--steps", "0", "--out", "again.h5")
    a, b = open_xr(state), open_xr(rtda.path("again.h5"))
    check(bitwise_equal(a["q"].values, b["q"].values),
          "q changed: " + how_different(a["q"].values, b["q"].values))
    check(a.attrs["time_seconds"] == b.attrs["time_seconds"], "time_seconds changed")


@case
def forecast_of_zero_steps_returns_an_ensemble_unchanged(rtda):
    import numpy as np
    nature = rtda.nature()
    write_ensemble_netcdf4(member_states(rtda, nature, 3), rtda.path("ens.h5"))
    rtda.ok("forecast", "--in", "ens.h5", "--steps", "0", "--out", "ens0.h5")
    a, b = open_xr(rtda.path("ens.h5")), open_xr(rtda.path("ens0.h5"))
    check(b["q"].dims == ("member", "level", "y", "x"), f"q dims {b['q'].dims}")
    check(np.array_equal(b["member"].values, [0, 1, 2]), f"member {b['member'].values}")
    check_grid_coords(b, "ens0.h5")
    check_model_attrs(b, "ens0.h5", "ensemble")
    check(bitwise_equal(a["q"].values, b["q"].values),
          "q changed: " + how_different(a["q"].values, b["q"].values))
    check(a.attrs["time_seconds"] == b.attrs["time_seconds"], "time_seconds changed")


# FFTW_MEASURE (the default model.fft_planning) may choose different algorithms in different
# processes and so change round-off (docs/configuration.md). Forecasts compared bit for bit
# across processes therefore use estimated plans, or share one wisdom file, as documented.
ESTIMATE = ["--set", "model.fft_planning=estimate"]


def ensemble_vs_members(rtda, steps, variants, planning=ESTIMATE):
    """Forecasts each of 3 nature states alone, single-threaded, and the ensemble of all
    three once per (label, environment, extra arguments) variant, all with `planning`; every
    ensemble forecast must equal the member forecasts bitwise."""
    import numpy as np
    nature = rtda.nature()
    states = member_states(rtda, nature, 3)
    write_ensemble_netcdf4(states, rtda.path("ens.h5"))
    alone = []
    for k, s in enumerate(states):
        rtda.ok("forecast", "--in", s, "--steps", str(steps), "--out", f"alone_{k}.h5",
                *planning, env={"OMP_NUM_THREADS": "1"})
        alone.append(open_xr(rtda.path(f"alone_{k}.h5"))["q"].values)
    alone = np.stack(alone)
    t0 = float(open_xr(states[0]).attrs["time_seconds"])
    q0 = open_xr(rtda.path("ens.h5"))["q"].values
    for label, env, args in variants:
        out = f"ens_{label}.h5"
        rtda.ok("forecast", "--in", "ens.h5", "--steps", str(steps), "--out", out, *planning,
                *args, env=env)
        ds = open_xr(rtda.path(out))
        check(ds["q"].dims == ("member", "level", "y", "x"), f"{out}: q dims {ds['q'].dims}")
        check(np.array_equal(ds["member"].values, [0, 1, 2]), f"{out}: member coordinate")
        check_grid_coords(ds, out)
        check_model_attrs(ds, out, "ensemble")
        check(float(ds.attrs["time_seconds"]) == t0 + steps * DT_N32,
              f"{out}: time_seconds {ds.attrs['time_seconds']}, want {t0 + steps * DT_N32}")
        q = ds["q"].values
        check(np.abs(q - q0).max() > 1.0, f"{out}: the forecast did not move q")
        for m in range(3):
            check(bitwise_equal(q[m], alone[m]), f"{out}: member {m} != its own forecast: "
                  + how_different(q[m], alone[m]))


@case
def forecast_of_an_ensemble_equals_member_by_member_forecasts(rtda):
    # 7 steps take the single advance_grid path of `rtda forecast`.
    ensemble_vs_members(rtda, 7, [("omp2", {"OMP_NUM_THREADS": "2"}, [])])


@case
def chunked_forecast_of_an_ensemble_equals_member_by_member_forecasts(rtda):
    # More than 20 steps take the chunked path (spectral state kept between progress chunks).
    ensemble_vs_members(rtda, 30, [("omp2", {"OMP_NUM_THREADS": "2"}, [])])


@case
def ensemble_forecast_is_bitwise_independent_of_the_thread_count(rtda):
    # Threads from OMP_NUM_THREADS (model.threads = 0) and from model.threads, including more
    # threads than members.
    one, two = {"OMP_NUM_THREADS": "1"}, {"OMP_NUM_THREADS": "2"}
    ensemble_vs_members(rtda, 30, [("omp1", one, []), ("omp2", two, []),
                                   ("threads2", one, ["--set", "model.threads=2"]),
                                   ("threads4", one, ["--set", "model.threads=4"])])


@case
def processes_sharing_a_wisdom_file_forecast_bitwise_alike(rtda):
    # Measured plans, made once by the first process and imported by every later one.
    wisdom = ["--set", "model.fft_planning=measure", "--set", "model.fft_wisdom_file=fftw.wisdom"]
    ensemble_vs_members(rtda, 30, [("omp1", {"OMP_NUM_THREADS": "1"}, []),
                                   ("omp2", {"OMP_NUM_THREADS": "2"}, [])], planning=wisdom)
    check(os.path.getsize(rtda.path("fftw.wisdom")) > 0, "no wisdom was written")


# ---- bad input -------------------------------------------------------------------------------

@case
def missing_out_is_an_error_naming_out(rtda):
    rtda.fails("nature", *SHORT_NATURE, naming=["--out"])


@case
def nonexistent_input_is_an_error_naming_the_path(rtda):
    rtda.fails("forecast", "--in", "no_such_file.h5", "--steps", "1", "--out", "out.h5",
               naming=["no_such_file.h5"], out="out.h5")


@case
def non_hdf5_input_is_an_error_naming_the_file(rtda):
    with open(rtda.path("text.h5"), "w") as f:
        f.write("this is not HDF5\n")
    rtda.fails("forecast", "--in", "text.h5", "--steps", "1", "--out", "out.h5",
               naming=["text.h5", "HDF5"], out="out.h5")


@case
def odd_grid_size_is_an_error_naming_model_n(rtda):
    rtda.fails("nature", "--out", "n.h5", *SHORT_NATURE, "--set", "model.N=63",
               naming=["model.N", "63", "even"], out="n.h5")


@case
def unknown_dynamics_is_an_error_naming_the_value_and_the_choices(rtda):
    rtda.fails("nature", "--out", "n.h5", *SHORT_NATURE, "--set", "model.dynamics=fast",
               naming=["model.dynamics", "fast", "sqgturb", "exact"], out="n.h5")


@case
def unknown_set_key_is_an_error_naming_the_key(rtda):
    rtda.fails("nature", "--out", "n.h5", *SHORT_NATURE, "--set", "nosuch.key=1",
               naming=["nosuch.key"], out="n.h5")


@case
def unknown_toml_key_is_an_error_naming_the_key_and_the_file(rtda):
    with open(rtda.path("exp.toml"), "w") as f:
        f.write("[model]\nN = 32\nbogus_key = 3\n")
    rtda.fails("nature", "--out", "n.h5", "--config", "exp.toml",
               naming=["model.bogus_key", "exp.toml"], out="n.h5")


@case
def unknown_experiment_is_an_error_listing_the_experiments(rtda):
    nature = rtda.nature()
    rtda.fails("observe", "--nature", nature, "--experiment", "bogus", "--out", "obs.h5",
               naming=["bogus", "linear", "linear-shocks", "arctan", "sparse-arctan-shocks"],
               out="obs.h5")


@case
def state_with_wrong_units_is_an_error_naming_file_variable_and_units(rtda):
    import h5py
    nature = rtda.nature()
    (state,) = member_states(rtda, nature, 1)
    shutil.copy(state, rtda.path("kelvin.h5"))
    with h5py.File(rtda.path("kelvin.h5"), "r+") as f:
        f["q"].attrs["units"] = b"K"
    rtda.fails("forecast", "--in", "kelvin.h5", "--steps", "1", "--out", "out.h5",
               naming=["kelvin.h5", '"q"', "m s-1", '"K"'], out="out.h5")


@case
def observing_more_cycles_than_nature_states_is_an_error_naming_observe_cycles(rtda):
    nature = rtda.nature()
    rtda.fails("observe", "--nature", nature, "--experiment", "linear", "--out", "obs.h5",
               "--set", "observe.cycles=999", naming=["observe.cycles", "999", "3"],
               out="obs.h5")


# ---- config and demo -------------------------------------------------------------------------

@case
def config_markdown_documents_model_dynamics(rtda):
    p = rtda.ok("config", "--markdown")
    line = [ln for ln in p.stdout.splitlines() if "model.dynamics" in ln]
    check(line, "model.dynamics is not in the reference")
    check("sqgturb" in line[0] and "exact" in line[0], f"choices missing: {line[0]}")


@case
def config_with_n128_prints_the_presets_time_step(rtda):
    p = rtda.ok("config", "--set", "model.N=128")
    lines = [ln.strip() for ln in p.stdout.splitlines()]
    check("N = 128" in lines, "N = 128 not printed")
    check("dt_s = 600.0" in lines or "dt_s = 600" in lines, "dt_s = 600 not printed")


@case
def demo_runs_the_service_end_to_end_and_cleans_up(rtda):
    """The README's demo: nature run, observations, server, 2-rank worker group, feeder and
    watcher; every cycle is published with an RMSE against the truth, and no process is
    left behind."""
    p = rtda.ok("demo", "--dir", "demo", "--cycles", "3", "--window-seconds", "0.3",
                "--set", "model.preset=N32", "--set", "nature.spinup_days=1",
                "--set", "nature.states=4", "--set", "ensemble.members=4",
                "--set", "server.filter=letkf")
    check("3 of 3 cycles published" in p.stdout, f"summary missing: {p.stdout}")
    lines = [l for l in p.stdout.splitlines() if l.startswith("cycle ")]
    check(len(lines) == 3 and all("rmse   n/a" not in l for l in lines), f"cycles: {lines}")
    nature, obs = rtda.path("demo/nature.h5"), rtda.path("demo/obs-linear-shocks.h5")
    n, o = open_xr(nature), open_xr(obs)
    check(n.sizes["time"] == 4, f"nature time size {n.sizes['time']}")
    check(o.sizes["cycle"] == 3 and o.sizes["obs"] == 3 * 2 * N * N, f"obs sizes {dict(o.sizes)}")
    analyses = sorted(os.listdir(rtda.path("demo/data/analyses")))
    check(analyses == [f"analysis-{k:08d}.h5" for k in range(3)], f"analyses {analyses}")
    a = open_xr(rtda.path("demo/data/analyses/analysis-00000002.h5"))
    check(a["mean"].dims == ("cycle", "level", "y", "x"), f"archive dims {a['mean'].dims}")
    left = subprocess.run(["pgrep", "-f", rtda.path("demo/service.toml")], capture_output=True,
                          text=True).stdout.strip()
    check(left == "", f"processes left running: {left}")


@case
def demo_stops_everything_it_started_on_ctrl_c(rtda):
    """Ctrl-C in the middle of the demo: the service is shut down, every process it started
    is gone, and the demo exits with 130."""
    import signal
    import time
    proc = subprocess.Popen([rtda.exe, "demo", "--dir", "demo", "--cycles", "200",
                             "--window-seconds", "0.5", "--set", "model.preset=N32",
                             "--set", "nature.spinup_days=1", "--set", "nature.states=210",
                             "--set", "ensemble.members=4", "--set", "server.filter=letkf"],
                            cwd=rtda.dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    seen = []
    deadline = time.monotonic() + 45
    try:
        for line in proc.stdout:
            seen.append(line)
            if line.startswith("cycle    1") or time.monotonic() > deadline:
                break
        check(any(l.startswith("cycle    1") for l in seen), f"no cycle 1 in: {''.join(seen)}")
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    check(proc.returncode == 130, f"exit status {proc.returncode}; output {rest[-800:]}")
    check("interrupted" in rest, f"no interruption notice: {rest[-800:]}")
    left = subprocess.run(["pgrep", "-f", rtda.path("demo/service.toml")], capture_output=True,
                          text=True).stdout.strip()
    left_workers = subprocess.run(["pgrep", "-f", rtda.path("demo/workers.sock")],
                                  capture_output=True, text=True).stdout.strip()
    check(left == "" and left_workers == "", f"processes left running: {left} {left_workers}")


@case
def experiment_with_the_trained_surrogate_as_forecast_model(rtda):
    """rtda train writes a surrogate; rtda experiment --set model.kind=vit cycles with it
    (members batched through the ViT) and records the model in the archive."""
    import numpy as np
    small = ["--set", "model.preset=N32", "--set", "nature.spinup_days=2"]
    rtda.ok("nature", "--out", "train.h5", *small, "--set", "nature.states=30")
    rtda.ok("nature", "--out", "val.h5", *small, "--set", "nature.states=12",
            "--set", "nature.seed=7")
    tiny = ["--set", "surrogate.dim=16", "--set", "surrogate.depth=1", "--set",
            "surrogate.heads=2", "--set", "surrogate.steps=40", "--set", "surrogate.eval_every=20",
            "--set", "surrogate.warmup_steps=5"]
    p = rtda.ok("train", "--data", "train.h5", "--validation", "val.h5", "--out", "vit.h5",
                *small, *tiny)
    check("best validation RMSE" in p.stdout, f"train summary missing: {p.stdout}")
    rtda.ok("experiment", "--out", "exp.h5", "--filter", "ensf", *small,
            "--set", "experiment.nature_file=val.h5", "--set", "experiment.cycles=3",
            "--set", "ensemble.members=4", "--set", "experiment.statistics_from_cycle=0",
            "--set", "model.kind=vit", "--set", f"surrogate.weights={rtda.path('vit.h5')}")
    a = open_xr(rtda.path("exp.h5"))
    check(a.attrs.get("model") == "vit:vit.h5", f"archive model attribute {a.attrs.get('model')}")
    check(np.isfinite(a["mean"].values).all() and a.sizes["cycle"] == 3, f"archive {dict(a.sizes)}")


@case
def device_choice_is_logged_and_gpu_without_a_device_is_refused(rtda):
    """--device auto picks the CPU here and says why; --device gpu without a usable GPU is an
    error giving the runtime's reason, not a silent CPU run; hip and cuda are gpu of one
    toolchain, and the other one is refused naming this build's (docs/architecture.md §6)."""
    small = [*SHORT_NATURE, "--set", "experiment.cycles=1", "--set", "ensemble.members=4"]
    p = rtda.ok("experiment", "--filter", "letkf", "--out", "auto.h5", *small)
    m = re.search(r"device auto -> (?:cpu \((.+)\)|gpu: )", p.stderr)
    check(m is not None, f"no device choice on stderr: {p.stderr}")
    if m.group(1) is None:
        return  # a machine with a GPU: auto took it
    why = m.group(1)
    no_gpu = f"gpu was requested but no GPU is usable: {why}"
    rtda.fails("experiment", "--filter", "letkf", "--out", "gpu.h5", "--device", "gpu", *small,
               naming=[no_gpu], out="gpu.h5")
    refused = []
    for name in ("hip", "cuda"):
        p = rtda.fails("experiment", "--filter", "letkf", "--out", f"{name}.h5", "--device",
                       name, *small, naming=[], out=f"{name}.h5")
        if f"'{name}' asks for a {name.upper()} GPU, but this build's GPU backend is" in p.stderr:
            refused.append(name)
        else:  # this build's toolchain: gpu, and there is none
            check(no_gpu in p.stderr, f"--device {name}: {p.stderr}")
    check(refused, "hip or cuda (or both, in a build without a GPU backend) is not this "
          "build's toolchain and is refused as such")
    rtda.fails("analyze", "--prior", "auto.h5", "--obs", "auto.h5", "--filter", "letkf",
               "--out", "z.h5", "--device", "tpu", naming=["--device", "tpu"], out="z.h5")


def device_attributes(path):
    """The root attributes of a file that say what computed it (text, as h5py reads it)."""
    import h5py
    with h5py.File(path, "r") as f:
        return {k: v.decode() if isinstance(v, bytes) else str(v)
                for k, v in f.attrs.items() if k.startswith("device")}


@case
def files_say_which_device_computed_them(rtda):
    """rtda experiment, analyze and forecast write device ("cpu"/"gpu"), device_name and
    device_toolchain into their files' root attributes (docs/file-formats.md); on the CPU the
    toolchain is the host compiler."""
    small = [*SHORT_NATURE, "--set", "ensemble.members=4"]
    rtda.ok("experiment", "--filter", "ensf", "--out", "run.h5", "--device", "cpu", *small,
            "--set", "experiment.cycles=2")
    rtda.ok("ensemble", "--nature", "run-nature.h5", "--index", "0", "--out", "prior.h5", *small)
    rtda.ok("observe", "--nature", "run-nature.h5", "--experiment", "linear", "--out", "obs.h5",
            *small)
    rtda.ok("analyze", "--prior", "prior.h5", "--obs", "obs.h5", "--filter", "letkf", "--out",
            "post.h5", "--device", "cpu", *small)
    rtda.ok("forecast", "--in", "post.h5", "--steps", "1", "--out", "fc.h5")
    got = {name: device_attributes(rtda.path(name)) for name in ("run.h5", "post.h5", "fc.h5")}
    first = got["run.h5"]
    check(set(first) == {"device", "device_name", "device_toolchain"},
          f"the archive's device attributes: {first}")
    check(first["device"] == "cpu" and first["device_name"].strip(),
          f"device cpu and the processor's name: {first}")
    check(first["device_toolchain"].startswith(("GCC ", "clang ")),
          f"on the CPU the toolchain is the host compiler: {first['device_toolchain']!r}")
    for name, attrs in got.items():
        check(attrs == first, f"{name}: {attrs}, the archive's: {first}")


def analyze_case(rtda, filter_name):
    """nature -> ensemble -> observe -> analyze: the posterior is an ensemble file that
    xarray reads, and its mean is closer to the observed truth than the prior's."""
    import numpy as np
    rtda.ok("nature", "--out", "nature.h5", "--set", "model.N=32", "--set",
            "nature.spinup_days=20", "--set", "nature.states=3")
    rtda.ok("ensemble", "--nature", "nature.h5", "--index", "0", "--out", "prior.h5",
            "--set", "ensemble.members=10", "--set", "ensemble.initial_noise_sd_ms=3000")
    rtda.ok("observe", "--nature", "nature.h5", "--experiment", "linear", "--out", "obs.h5")
    # The prior (state 0 + noise) is valid at state 0's time, so the window picks cycle 0.
    p = rtda.ok("analyze", "--prior", "prior.h5", "--obs", "obs.h5", "--filter", filter_name,
                "--out", "post.h5")
    check("wrote" in p.stdout, f"summary missing: {p.stdout}")
    prior = open_xr(rtda.path("prior.h5"))
    post = open_xr(rtda.path("post.h5"))
    nature = open_xr(rtda.path("nature.h5"))
    check(post["q"].dims == ("member", "level", "y", "x"), f"dims {post['q'].dims}")
    truth = nature["q"].values[0]
    err_prior = np.sqrt(np.mean((prior["q"].values.mean(axis=0) - truth) ** 2))
    err_post = np.sqrt(np.mean((post["q"].values.mean(axis=0) - truth) ** 2))
    # Prior mean error ~3000/sqrt(10) = 950 m/s, spread 3000 m/s; every point observed with
    # sigma 1 K = 327 m/s. A Kalman update gives about the observation error (~330 m/s), so
    # the analysis must at least halve the prior's error.
    check(err_post < 0.5 * err_prior, f"posterior RMSE {err_post} vs prior {err_prior} m/s")


@case
def analyze_with_letkf_pulls_the_ensemble_toward_the_observations(rtda):
    analyze_case(rtda, "letkf")


@case
def analyze_with_ensf_pulls_the_ensemble_toward_the_observations(rtda):
    analyze_case(rtda, "ensf")


@case
def analyze_refuses_a_state_file_as_prior(rtda):
    rtda.ok("nature", "--out", "nature.h5", *SHORT_NATURE)
    rtda.ok("forecast", "--in", "nature.h5", "--nature-index", "0", "--steps", "0", "--out",
            "state.h5")
    rtda.ok("observe", "--nature", "nature.h5", "--experiment", "linear", "--out", "obs.h5")
    p = rtda.run("analyze", "--prior", "state.h5", "--obs", "obs.h5", "--filter", "letkf",
                 "--out", "post.h5")
    check(p.returncode != 0 and "ensemble" in p.stderr, f"exit {p.returncode}: {p.stderr}")



@case
def experiment_archive_has_the_documented_diagnostics(rtda):
    import numpy as np
    p = rtda.ok("experiment", "--filter", "letkf", "--out", "run.h5", "--set", "model.N=32",
                "--set", "nature.spinup_days=5", "--set", "nature.states=20", "--set",
                "experiment.cycles=3", "--set", "experiment.statistics_from_cycle=0", "--set",
                "ensemble.members=6", "--set", "ensemble.initial=climatology", "--set",
                "ensemble.climatology_stride=3")
    check("summary over cycles 0..2" in p.stdout, f"summary missing: {p.stdout}")
    ds = open_xr(rtda.path("run.h5"))
    for name in ["rmse_background", "rmse_analysis", "spread_background", "spread_analysis",
                 "innovation_mean", "innovation_rms", "consistency_ratio", "observations_used",
                 "seconds_forecast", "seconds_analysis"]:
        check(name in ds and ds[name].dims == ("cycle",), f"{name} missing or not (cycle)")
    check(ds["rmse_analysis"].attrs.get("units") == "K", "rmse_analysis units")
    check(ds["mean"].dims == ("cycle", "level", "y", "x"), f"mean dims {ds['mean'].dims}")
    check(ds.sizes["cycle"] == 3, f"cycles {ds.sizes['cycle']}")
    check(np.all(ds["observations_used"].values == 2 * 32 * 32), "all points observed")
    check(np.all(ds["rmse_analysis"].values < ds["rmse_background"].values),
          "the analysis must beat the background when every point is observed")
    # The plotting client turns the archive into the two figures of docs/experiments.md.
    # (a module of the Python client that needs only h5py, numpy and matplotlib: run as a file)
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "client",
                          "python", "rtda_client", "plot_archives.py")
    plots = rtda.path("plots")
    p = subprocess.run([sys.executable, script, rtda.path("run.h5"), "--from-cycle", "0",
                        "--out-dir", plots], capture_output=True, text=True, timeout=120)
    check(p.returncode == 0, f"plot_archives.py failed: {p.stderr}")
    for png in ("rmse_spread.png", "error_spectra.png"):
        path = os.path.join(plots, png)
        check(os.path.exists(path) and os.path.getsize(path) > 10000, f"{png} missing or empty")


@case
def experiment_refuses_a_climatology_that_does_not_fit(rtda):
    p = rtda.run("experiment", "--filter", "none", "--out", "run.h5", "--set", "model.N=32",
                 "--set", "nature.spinup_days=1", "--set", "nature.states=4", "--set",
                 "experiment.cycles=2", "--set", "ensemble.initial=climatology")
    check(p.returncode != 0 and "ensemble.initial" in p.stderr, f"exit {p.returncode}: {p.stderr}")


# ---- files of the run's own and of other tools; CF ------------------------------------

CF_CHECK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "io", "check_cf.py")
SMALL = ["--set", "model.N=32", "--set", "nature.spinup_days=1", "--set", "nature.states=4"]


def foreign_columns(rtda, src, out, attrs=None, value_units="K", k=None):
    """Writes `src`'s observations (of window k, or all) the way another tool would: the
    columns alone, through xarray, times in hours since a date, positions in km, int64 ids,
    no root attributes (or `attrs`)."""
    import numpy as np
    import xarray as xr
    o = open_xr(rtda.path(src))
    sel = np.ones(o.sizes["obs"], bool) if k is None else o["time"].values == o["cycle_time"].values[k]
    cols = {
        "time": ("obs", o["time"].values[sel] / 3600.0,
                 {"units": "hours since 2000-01-01 00:00:00"}),
        "level": ("obs", o["level"].values[sel].astype("int64")),
        "x": ("obs", o["x"].values[sel] / 1e3, {"units": "km"}),
        "y": ("obs", o["y"].values[sel] / 1e3, {"units": "km"}),
        "value": ("obs", o["value"].values[sel], {"units": value_units}),
        "error_sd": ("obs", o["error_sd"].values[sel], {"units": value_units}),
        "operator": ("obs", o["operator"].values[sel].astype("int8")),
        "id": ("obs", o["id"].values[sel].astype("int64")),
    }
    xr.Dataset(cols, attrs=attrs or {}).to_netcdf(rtda.path(out))


@case
def files_follow_the_cf_conventions(rtda):
    rtda.ok("nature", "--out", "nature.h5", *SMALL)
    rtda.ok("observe", "--nature", "nature.h5", "--experiment", "linear-shocks", "--out",
            "obs.h5")
    rtda.ok("observe", "--nature", "nature.h5", "--experiment", "arctan", "--out", "arctan.h5")
    rtda.ok("ensemble", "--nature", "nature.h5", "--index", "0", "--out", "prior.h5",
            "--set", "ensemble.members=4")
    rtda.ok("forecast", "--in", "nature.h5", "--nature-index", "1", "--steps", "1", "--out",
            "state.h5", "--set", "model.N=32")
    rtda.ok("analyze", "--prior", "prior.h5", "--obs", "obs.h5", "--filter", "letkf",
            "--out", "post.h5")
    rtda.ok("experiment", "--filter", "ensf", "--out", "run.h5", "--set", "experiment.cycles=2",
            "--set", "ensemble.members=4", "--set", "experiment.nature_file=nature.h5", *SMALL)
    files = [rtda.path(f) for f in ("nature.h5", "obs.h5", "arctan.h5", "prior.h5", "state.h5",
                                    "post.h5", "run.h5")]
    p = subprocess.run([sys.executable, CF_CHECK, *files], capture_output=True, text=True,
                       timeout=120)
    sys.stdout.write(p.stdout + p.stderr)
    check(p.returncode == 0, f"check_cf.py: {p.stdout[-2000:]}")
    # The checker fails when a rule is broken: a file without Conventions and with a unit
    # UDUNITS does not know.
    import xarray as xr
    xr.Dataset({"v": ("obs", [1.0], {"units": "observation units"})}).to_netcdf(
        rtda.path("bad.nc"))
    p = subprocess.run([sys.executable, CF_CHECK, rtda.path("bad.nc")], capture_output=True,
                       text=True, timeout=60)
    check(p.returncode == 1 and "Conventions" in p.stdout and "observation units" in p.stdout,
          f"check_cf.py passed a broken file: {p.stdout}")


@case
def analyze_reads_files_made_by_other_tools(rtda):
    import numpy as np
    import xarray as xr
    rtda.ok("nature", "--out", "nature.h5", *SMALL)
    rtda.ok("observe", "--nature", "nature.h5", "--experiment", "linear", "--out", "obs.h5")
    rtda.ok("ensemble", "--nature", "nature.h5", "--index", "1", "--out", "prior.h5",
            "--set", "ensemble.members=6", "--set", "ensemble.initial_noise_sd_ms=2000")
    # The same prior as another tool writes it: q and a CF time, no model attributes.
    prior = open_xr(rtda.path("prior.h5"))
    t = float(prior.attrs["time_seconds"])
    xr.Dataset({"q": (("member", "level", "y", "x"), prior["q"].values, {"units": "m s-1"}),
                "time": ((), t / 86400.0, {"units": "days since 2000-01-01"})}).to_netcdf(
        rtda.path("their_prior.nc"))
    foreign_columns(rtda, "obs.h5", "their_obs.nc", k=1)
    for name in ("letkf", "ensf"):
        rtda.ok("analyze", "--prior", "prior.h5", "--obs", "obs.h5", "--filter", name, "--out",
                f"ours_{name}.h5")
        p = rtda.ok("analyze", "--prior", "their_prior.nc", "--obs", "their_obs.nc", "--filter",
                    name, "--out", f"theirs_{name}.h5", "--set", "model.N=32")
        # One warning per file, naming what was assumed.
        warnings = [l for l in p.stderr.splitlines() if l.startswith("warning:")]
        check(len(warnings) == 2 and all("assumed the run's" in w and "N, L" in w
                                         for w in warnings), f"warnings: {warnings}")
        a = open_xr(rtda.path(f"ours_{name}.h5"))["q"].values
        b = open_xr(rtda.path(f"theirs_{name}.h5"))["q"].values
        check(bitwise_equal(a, b), f"{name}: their files analyse differently: {how_different(a, b)}")
    # What they state must agree with the run: N = 16 on a 32-point prior is refused; values in
    # a unit that is not their operator's are refused naming the row and the operator.
    foreign_columns(rtda, "obs.h5", "wrong_grid.nc", attrs={"N": np.int32(16)}, k=1)
    rtda.fails("analyze", "--prior", "their_prior.nc", "--obs", "wrong_grid.nc", "--filter",
               "letkf", "--out", "x.h5", "--set", "model.N=32", naming=["N = 16", "32"],
               out="x.h5")
    foreign_columns(rtda, "obs.h5", "wrong_units.nc", value_units="m s-1", k=1)
    rtda.fails("analyze", "--prior", "prior.h5", "--obs", "wrong_units.nc", "--filter", "letkf",
               "--out", "x.h5", naming=["value", "m s-1", "linear_K", "row 0"], out="x.h5")


@case
def experiment_assimilates_an_observation_file(rtda):
    rtda.ok("nature", "--out", "nature.h5", *SMALL)
    common = ["--filter", "letkf", "--set", "experiment.cycles=3", "--set",
              "ensemble.members=6", "--set", "experiment.nature_file=nature.h5",
              "--set", "experiment.observations=linear-shocks", *SMALL]
    rtda.ok("experiment", "--out", "made.h5", *common)
    # rtda observe's file of the same experiment (shocks included), then the columns alone.
    rtda.ok("observe", "--nature", "nature.h5", "--experiment", "linear-shocks", "--out",
            "obs.h5", *SMALL)
    rtda.ok("experiment", "--out", "read.h5", "--set", "experiment.observations_file=obs.h5",
            *common)
    made, read = open_xr(rtda.path("made.h5")), open_xr(rtda.path("read.h5"))
    for v in ("mean", "spread", "rmse_analysis"):
        check(bitwise_equal(made[v].values, read[v].values),
              f"{v}: the file's observations analyse differently: "
              f"{how_different(made[v].values, read[v].values)}")
    rtda.ok("observe", "--nature", "nature.h5", "--experiment", "linear", "--out", "lin.h5",
            *SMALL)
    foreign_columns(rtda, "lin.h5", "columns.nc")
    lin = ["--set" if a == "--set" else a for a in common]
    lin[lin.index("experiment.observations=linear-shocks")] = "experiment.observations=linear"
    rtda.ok("experiment", "--out", "lin_made.h5", *lin)
    p = rtda.ok("experiment", "--out", "lin_read.h5", "--set",
                "experiment.observations_file=columns.nc", *lin)
    check("assumed the run's" in p.stderr, f"no warning for the bare file: {p.stderr}")
    a = open_xr(rtda.path("lin_made.h5"))["mean"].values
    b = open_xr(rtda.path("lin_read.h5"))["mean"].values
    check(bitwise_equal(a, b), f"columns-only file: {how_different(a, b)}")


def main(argv):
    if argv[1:] == ["--list"]:
        print(";".join(CASES))
        return 0
    if len(argv) != 4 or argv[3] not in CASES:
        print(__doc__, file=sys.stderr)
        print("cases: " + ", ".join(CASES), file=sys.stderr)
        return 2
    exe, workdir, name = argv[1:]
    shutil.rmtree(workdir, ignore_errors=True)
    os.makedirs(workdir)
    try:
        CASES[name](Rtda(os.path.abspath(exe), os.path.abspath(workdir)))
    except Failure as f:
        print(f"FAILED {name}: {f}")
        return 1
    print(f"passed {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
