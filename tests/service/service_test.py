#!/usr/bin/python3
"""Service-level tests of rtda-server + rtda-worker driven over the wire (proto/rtda.proto).

Each case runs in its own temporary directory with its own server (N = 32 preset, 4 members,
a 24-state nature run and its "linear" observations made with the rtda CLI, ipc:// endpoints):

  bitwise_experiment    the service's published analyses (mean, spread, rmse_analysis) equal,
                        bit for bit, those of `rtda experiment` with the same configuration
                        (letkf, then ensf);
  server_kill9_restart  kill -9 of the server in the middle of a window; a restarted server
                        recovers from its log, the running worker group rejoins by itself, a
                        re-sent batch is a duplicate, and the analyses equal an uninterrupted
                        run's bit for bit; every observation is counted exactly once;
  worker_kill9_restart  kill -9 of the worker group (mpiexec and its ranks) right after the
                        window of cycle 2 closed; the server declares it lost after
                        server.worker_timeout_seconds, a new group restarts from the checkpoint
                        and cycles 2 and 3 equal the uninterrupted run's bit for bit;
  bad_input             garbage, truncated, oversize, wrong-version and over-limit batches, bad
                        observations and a garbage control request get the right replies, and
                        the server keeps answering;
  curve                 with security.curve, an allowed feeder gets answers, a client with other
                        keys or without CURVE gets none (allowed keys as list files);
  curve_cert_file       the same with security.feeder_keys = the feeder's NAME.key certificate
                        itself;
  device_lineage        a group with --device cpu: its device and toolchain in the server's
                        log, Status.workers and the analysis lineage, as rtda experiment
                        archives them.

Every process is killed in any case; every receive has a timeout; the whole run is bounded by
--time-limit (default 150 s).

  build/python-venv/bin/python tests/service/service_test.py --rtda build/client/rtda \\
      --server-bin build/server/rtda-server --worker-bin build/worker/rtda-worker \\
      --mpiexec mpiexec [--case NAME]
"""

import argparse
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

GRID_N = 32
MEMBERS = 4
CYCLES = 4
BATCH = 700  # 2048 observations per window -> batches of 700, 700, 648 (+ marker and truth)

def case_feed_columns_only(t):
    """`rtda feed` of a file with the observation columns alone, as another tool writes it
    (xarray; times in hours since a date, no cycle_time, no model attributes): the feeder cuts
    it into the server's windows (window.t0_seconds, experiment.cycle_hours from --config),
    and the analyses equal the uninterrupted reference run's bit for bit."""
    np = t.np
    import xarray as xr
    ref = reference_run(t)
    k = Case(t, "feed-columns-only")
    try:
        k.make_data()
        with xr.open_dataset(k.obs_h5, decode_times=False) as o:
            keep = np.isin(o["time"].values, k.obs.cycle_time[:CYCLES])
            cols = {name: ("obs", o[name].values[keep]) for name in
                    ("level", "x", "y", "value", "error_sd", "operator", "id")}
        cols["time"] = ("obs", k.obs.time[keep] / 3600.0,
                        {"units": "hours since 2000-01-01 00:00:00"})
        ds = xr.Dataset(cols)
        for name, units in (("x", "m"), ("y", "m"), ("value", "K"), ("error_sd", "K")):
            ds[name].attrs["units"] = units
        their = k.tmp / "their-obs.nc"
        ds.to_netcdf(their)
        k.start_server()
        k.start_worker()
        sub = k.subscriber()
        r = k.run_cli(["feed", "--obs", str(their), "--server", k.ep["ingest"], "--config",
                       str(k.cfg), "--truth", str(k.nature_h5), "--source", "their-tool"],
                      timeout=90)
        check("assumed the run's" in r.stderr,
              f"rtda feed warns once about the assumed model: {r.stderr[-500:]!r}")
        got = k.collect(sub, range(CYCLES))
        sub.close()
        compare_bitwise(t, "the reference run", got, ref, range(CYCLES))
        k.shutdown()
        k.ok = True
    finally:
        k.cleanup()


CASES = ["bitwise_experiment", "server_kill9_restart", "worker_kill9_restart", "bad_input",
         "curve", "curve_cert_file", "cli_control", "metrics", "off_grid_ensf",
         "online_surrogate_restart", "hostile_ingest", "least_privilege", "exactly_once",
         "compaction_restart", "backlog", "damaged_log", "quality_control", "lorenz96",
         "feed_columns_only", "device_lineage"]


sys.path.insert(0, str(HERE))
from harness import (Failure, add_service_arguments, kill_session, log_tail,  # noqa: E402
                     run_cases, session_pids)
from harness import check as _check  # noqa: E402


class Skip(Exception):
    pass


def check(cond, what):
    _check(cond, what, indent="  ")


def stop_process(p, name, grace=3.0):
    """Terminates `p` (started with start_new_session) and whatever else is left of its
    session (MPI ranks)."""
    if p is None:
        return
    if p.poll() is None:
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                break
            try:
                p.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
    deadline = time.monotonic() + 5
    while session_pids(p.pid) and time.monotonic() < deadline:
        kill_session(p.pid)
        time.sleep(0.05)
    if p.poll() is None:
        try:
            p.wait(timeout=1)
        except subprocess.TimeoutExpired:
            print(f"warning: {name} (pid {p.pid}) still running", file=sys.stderr)


def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


class Tools:
    """What every case shares: the binaries, the client module, the environment."""

    def __init__(self, a):
        import numpy as np
        import h5py
        import zmq
        import rtda_client as rc
        self.np, self.h5py, self.zmq, self.rc = np, h5py, zmq, rc
        self.pb = rc.pb
        self.rtda = str(Path(a.rtda).resolve())
        self.server_bin = str(Path(a.server_bin).resolve())
        self.worker_bin = str(Path(a.worker_bin).resolve())
        self.mpiexec = a.mpiexec
        self.keep = a.keep
        self.env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1",
                        OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMP_NUM_THREADS="2",
                        OMPI_MCA_rmaps_base_oversubscribe="1")
        self._reference = None


class Case:
    """One temporary directory with its configuration, data and processes."""

    def __init__(self, tools, name):
        self.t = tools
        self.name = name
        self.tmp = Path(tempfile.mkdtemp(prefix=f"rtda-svc-{name}-"))
        self.ep = {k: f"ipc://{self.tmp}/{k}.sock"
                   for k in ("ingest", "publish", "control", "workers")}
        self.cfg = self.tmp / "cfg.toml"
        self.nature_h5 = self.tmp / "nature.h5"
        self.obs_h5 = self.tmp / "obs.h5"
        self.server = None
        self.worker = None
        self.worker_groups = []  # every worker Popen started (killed in cleanup)
        self.server_log = self.tmp / "server.log"
        self.worker_log = self.tmp / "worker.log"
        self.settings = {}
        self.obs = None
        self.nature = None
        self.t0 = 0.0
        self.ok = False

    # ---- configuration and data -----------------------------------------------------------
    def write_config(self, **overrides):
        """overrides: "section.key" -> value, kept and applied on top of the base."""
        s = {
            "model": {"preset": "N32", "fft_planning": "estimate", "fft_wisdom_file": "",
                      "threads": 2},
            "nature": {"seed": 42, "spinup_days": 5.0, "states": 24, "interval_hours": 12.0},
            "ensemble": {"members": MEMBERS},
            "experiment": {"observations": "linear", "nature_file": str(self.nature_h5),
                           "cycles": CYCLES, "statistics_from_cycle": 0, "cycle_hours": 12.0},
            "server": {"ingest": self.ep["ingest"], "publish": self.ep["publish"],
                       "control": self.ep["control"], "workers": self.ep["workers"],
                       "data_dir": str(self.tmp / "data"), "filter": "letkf",
                       "log_sync": "always", "heartbeat_seconds": 0.5,
                       "worker_timeout_seconds": 10.0},
            "window": {"t0_seconds": float(self.t0), "late_policy": "next",
                       "deadline_seconds": 30.0, "grace_seconds": 2.0},
        }
        self.settings.update(overrides)
        for key, v in self.settings.items():
            sec, k = key.split(".", 1)
            s.setdefault(sec, {})[k] = v
        text = [f"# written by {Path(__file__).name} ({self.name})"]
        for sec, kv in s.items():
            text.append(f"\n[{sec}]")
            text.extend(f"{k} = {toml_value(v)}" for k, v in kv.items())
        self.cfg.write_text("\n".join(text) + "\n")

    def run_cli(self, args, timeout=60):
        r = subprocess.run([self.t.rtda] + args, env=self.t.env, capture_output=True,
                           text=True, timeout=timeout, cwd=self.tmp)
        if r.returncode != 0:
            raise Failure(f"rtda {' '.join(args)} exited {r.returncode}:\n{r.stdout[-2000:]}\n"
                          f"{r.stderr[-2000:]}")
        return r

    def make_data(self):
        """Nature run + "linear" observations; the config's t0 = the first cycle time."""
        self.write_config()
        self.run_cli(["nature", "--config", str(self.cfg), "--out", str(self.nature_h5)])
        self.run_cli(["observe", "--config", str(self.cfg), "--nature", str(self.nature_h5),
                      "--experiment", "linear", "--out", str(self.obs_h5)])
        self.obs = self.t.rc.read_observation_file(str(self.obs_h5))
        if len(self.obs.cycle_time) < CYCLES + 1:
            raise Failure(f"observation file holds {len(self.obs.cycle_time)} cycles")
        self.window = self.obs.window_index()
        self.t0 = float(self.obs.cycle_time[0])
        self.nature = self.t.rc.NatureRun(str(self.nature_h5))
        self.write_config()

    def window_count(self, c):
        return int((self.window == c).sum())

    def window_batches(self, c, source="svc-test"):
        """The batches of window c: seq = 1 + 3c + j; the last has the marker and the truth."""
        np, rc = self.t.np, self.t.rc
        t = float(self.obs.cycle_time[c])
        idx = np.nonzero(self.window == c)[0]
        chunks = [idx[i:i + BATCH] for i in range(0, len(idx), BATCH)]
        if len(chunks) != 3:
            raise Failure(f"window {c}: {len(chunks)} batches, the test expects 3")
        out = []
        for j, chunk in enumerate(chunks):
            last = j == len(chunks) - 1
            out.append(rc.make_batch(source, 1 + 3 * c + j, self.obs, chunk,
                                     end_of_window=t if last else None,
                                     truth_q=self.nature.state_at(t) if last else None,
                                     truth_time=t))
        return out

    # ---- processes --------------------------------------------------------------------------
    def start_server(self, wait=True, preexec_fn=None):
        self.server = subprocess.Popen([self.t.server_bin, "--config", str(self.cfg)],
                                       env=self.t.env, stdout=open(self.server_log, "a"),
                                       stderr=subprocess.STDOUT, start_new_session=True,
                                       cwd=self.tmp, preexec_fn=preexec_fn)
        return self.wait_server() if wait else None

    def wait_server(self):
        """The first status of the server just started (fails if it exits first)."""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.server.poll() is not None:
                raise Failure(f"rtda-server exited {self.server.returncode} at start:\n"
                              f"{log_tail(self.server_log)}")
            try:
                return self.t.rc.status(self.ep["control"], timeout_s=1.0)
            except TimeoutError:
                continue
        raise Failure("rtda-server did not answer status within 20 s")

    def start_worker(self, args=()):
        self.worker = subprocess.Popen(
            [self.t.mpiexec, "-n", "1", "--oversubscribe", self.t.worker_bin, "--server",
             self.ep["workers"], *args], env=self.t.env, stdout=open(self.worker_log, "a"),
            stderr=subprocess.STDOUT, start_new_session=True, cwd=self.tmp)
        self.worker_groups.append(self.worker)
        return self.wait_connected()

    def wait_connected(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        st = None
        while time.monotonic() < deadline:
            if self.worker is not None and self.worker.poll() is not None:
                raise Failure(f"the worker group exited {self.worker.returncode}:\n"
                              f"{log_tail(self.worker_log)}")
            try:
                st = self.status(2.0)
            except TimeoutError:
                continue
            if st.workers.connected:
                return st
            time.sleep(0.1)
        raise Failure(f"no worker group connected within {timeout:g} s")

    def status(self, timeout=5.0):
        return self.t.rc.status(self.ep["control"], timeout_s=timeout)

    def counters(self):
        return self.t.rc.counters(self.status())

    def subscriber(self):
        sub = self.t.rc.Subscriber(self.ep["publish"], ["rtda.analysis"])
        time.sleep(0.5)  # let the subscription reach the publisher (a PUB drops until then)
        return sub

    def collect(self, sub, cycles, timeout=40.0, into=None):
        """Analyses (topic rtda.analysis) of `cycles` -> dict cycle -> Analysis."""
        got = {} if into is None else into
        deadline = time.monotonic() + timeout
        while not set(cycles) <= set(got) and time.monotonic() < deadline:
            m = sub.recv(max(0.05, min(1.0, deadline - time.monotonic())))
            if m is None:
                if self.server is not None and self.server.poll() is not None:
                    raise Failure(f"rtda-server exited {self.server.returncode}")
                continue
            topic, an = m
            if topic == "rtda.analysis":
                got[an.cycle] = an
        missing = sorted(set(cycles) - set(got))
        if missing:
            st = self.status()
            raise Failure(f"cycles {missing} not published within {timeout:g} s (got "
                          f"{sorted(got)}); status:\n{self.t.rc.status_text(st)}")
        return got

    def feed(self, batches, expect=None):
        """Sends each batch on one DEALER, waiting for its ack; returns the acks."""
        pb = self.t.pb
        expect = pb.ACK_ACCEPTED if expect is None else expect
        acks = []
        with self.t.rc.Feeder(self.ep["ingest"], timeout_s=2.0, tries=10) as f:
            for b in batches:
                ack = f.send(b)
                if ack.status != expect or ack.rejected or ack.late:
                    raise Failure(f"{b.source}#{b.seq}: {self.t.rc.ack_status_name(ack.status)}"
                                  f" accepted {ack.accepted} rejected {ack.rejected} late "
                                  f"{ack.late} {ack.error!r}")
                acks.append(ack)
        return acks

    def shutdown(self):
        try:
            reply = self.t.rc.control(self.ep["control"], self.t.pb.COMMAND_SHUTDOWN,
                                      timeout_s=5.0)
        except TimeoutError:
            return
        if reply.ok:
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and (
                    self.server.poll() is None or
                    (self.worker is not None and self.worker.poll() is None)):
                time.sleep(0.1)

    def cleanup(self):
        stop_process(self.server, "rtda-server")
        for w in self.worker_groups:
            stop_process(w, "worker group")
        if self.nature is not None:
            self.nature.close()
        if not self.ok:
            for name, path in (("rtda-server", self.server_log), ("worker", self.worker_log)):
                if path.exists():
                    print(f"--- {self.name}: {name} log (tail) ---\n{log_tail(path)}",
                          file=sys.stderr, flush=True)
        if self.t.keep or (not self.ok and os.environ.get("RTDA_KEEP_TMP")):
            print(f"  kept {self.tmp}", flush=True)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Comparisons


def fields(t, an):
    np = t.np
    return (np.asarray(an.mean, dtype=np.float64).reshape(2, GRID_N, GRID_N),
            np.asarray(an.spread, dtype=np.float64).reshape(2, GRID_N, GRID_N),
            an.diagnostics.get("rmse_analysis", math.nan))


def compare_bitwise(t, what, got, ref, cycles):
    """got: dict cycle -> Analysis; ref: dict cycle -> (mean, spread, rmse)."""
    np = t.np
    for c in cycles:
        m, s, r = fields(t, got[c])
        rm, rs, rr = ref[c]
        dm, ds = float(np.max(np.abs(m - rm))), float(np.max(np.abs(s - rs)))
        check(np.array_equal(m, rm) and np.array_equal(s, rs),
              f"cycle {c}: mean and spread equal {what} bitwise (max |diff| mean {dm:.3g}, "
              f"spread {ds:.3g})")
        check(r == rr, f"cycle {c}: rmse_analysis {r!r} == {what}'s {rr!r}")


def print_joins(k):
    for line in Path(k.server_log).read_text(errors="replace").splitlines():
        if "worker group joined" in line or "lost" in line:
            print(f"  server: {line.split(': ', 1)[-1]}", flush=True)


def reference_run(t):
    """An uninterrupted service run (letkf, 4 windows): dict cycle -> (mean, spread, rmse).
    Made once per test process and shared by the kill cases."""
    if t._reference is not None:
        return t._reference
    print("  (reference: an uninterrupted service run of 4 windows)", flush=True)
    k = Case(t, "reference")
    try:
        k.make_data()
        k.start_server()
        k.start_worker()
        sub = k.subscriber()
        for c in range(CYCLES):
            k.feed(k.window_batches(c))
        got = k.collect(sub, range(CYCLES))
        sub.close()
        t._reference = {c: fields(t, got[c]) for c in range(CYCLES)}
        k.shutdown()
        k.ok = True
    finally:
        k.cleanup()
    return t._reference


# ---------------------------------------------------------------------------------------------
# Cases


def case_bitwise_experiment(t, filters=("letkf", "ensf")):
    np = t.np
    for flt in filters:
        print(f"  -- filter {flt}", flush=True)
        k = Case(t, f"bitwise-{flt}")
        try:
            k.make_data()
            k.write_config(**{"server.filter": flt})
            archive = k.tmp / f"experiment-{flt}.h5"
            k.run_cli(["experiment", "--config", str(k.cfg), "--filter", flt, "--out",
                       str(archive)], timeout=90)
            with t.h5py.File(archive, "r") as f:
                ref = {c: (np.asarray(f["mean"][c], dtype=np.float64),
                           np.asarray(f["spread"][c], dtype=np.float64),
                           float(f["rmse_analysis"][c])) for c in range(CYCLES)}
                times = np.asarray(f["time"][...])
            check(len(times) == CYCLES and np.array_equal(times, k.obs.cycle_time[:CYCLES]),
                  "the archive holds cycles at the observation file's cycle times")
            k.start_server()
            k.start_worker()
            sub = k.subscriber()
            for c in range(CYCLES):
                k.feed(k.window_batches(c))
            got = k.collect(sub, range(CYCLES))
            sub.close()
            for c in range(CYCLES):
                check(got[c].filter == flt and got[c].valid_time_seconds == times[c] and
                      got[c].lineage.observations_used == k.window_count(c),
                      f"cycle {c}: filter {got[c].filter}, valid time, "
                      f"{got[c].lineage.observations_used} observations")
            compare_bitwise(t, f"rtda experiment ({flt})", got, ref, range(CYCLES))
            k.shutdown()
            k.ok = True
        finally:
            k.cleanup()


def case_server_kill9_restart(t):
    pb = t.pb
    ref = reference_run(t)
    k = Case(t, "server-kill9")
    try:
        k.make_data()
        k.start_server()
        k.start_worker()
        sub = k.subscriber()
        batches = {c: k.window_batches(c) for c in range(CYCLES)}
        k.feed(batches[0] + batches[1])
        k.collect(sub, [0, 1])
        sub.close()
        k.feed(batches[2][:2])  # window 2 without its end marker
        before = k.counters()
        fed_before = k.window_count(0) + k.window_count(1) + sum(
            len(b.observations) for b in batches[2][:2])
        check(before.get("observations_accepted") == fed_before,
              f"before the kill: observations_accepted = {before.get('observations_accepted')}"
              f" = {fed_before} fed")
        st = k.status()
        check(st.open_windows >= 1 and st.last_cycle == 1,
              f"window 2 open ({st.open_windows} open), last cycle {st.last_cycle}")

        os.killpg(k.server.pid, signal.SIGKILL)
        k.server.wait(timeout=10)
        check(k.server.returncode == -signal.SIGKILL, "rtda-server killed with SIGKILL")
        check(k.worker.poll() is None, "the worker group survives the server's death")
        time.sleep(0.5)

        k.start_server()
        st = k.wait_connected(timeout=30)
        check(st.last_cycle == 1 and st.workers.connected,
              f"restarted server: last cycle {st.last_cycle}, the worker group rejoined by "
              f"itself (state {st.state}, stage {st.workers.stage})")
        sub = k.subscriber()
        # A retry of a batch made durable before the kill: known from the replayed log.
        acks = k.feed([batches[2][1]], expect=pb.ACK_DUPLICATE)
        check(acks[0].accepted == len(batches[2][1].observations),
              f"re-sent {batches[2][1].source}#{batches[2][1].seq}: ACK_DUPLICATE, accepted "
              f"{acks[0].accepted} the first time")
        k.feed(batches[2][2:] + batches[3])
        got = k.collect(sub, [2, 3])
        sub.close()
        for c in (2, 3):
            check(got[c].lineage.observations_used == k.window_count(c),
                  f"cycle {c}: {got[c].lineage.observations_used} observations used "
                  f"= {k.window_count(c)} in the window")
        print_joins(k)
        compare_bitwise(t, "the uninterrupted run", got, ref, [2, 3])
        after = k.counters()
        fed_after = len(batches[2][2].observations) + k.window_count(3)
        total = sum(k.window_count(c) for c in range(CYCLES))
        # The restarted server counts what its log holds plus what arrived since: every
        # observation exactly once.
        check(after.get("observations_accepted") == total,
              f"after the restart: observations_accepted = "
              f"{after.get('observations_accepted')}, expected {total} "
              f"({fed_before} from the log + {fed_after} fed since)")
        check(after.get("batches_duplicate") == 1,
              f"batches_duplicate = {after.get('batches_duplicate')}")
        k.shutdown()
        k.ok = True
    finally:
        k.cleanup()


def case_worker_kill9_restart(t):
    ref = reference_run(t)
    k = Case(t, "worker-kill9")
    try:
        k.make_data()
        k.write_config(**{"server.heartbeat_seconds": 0.2,
                          "server.worker_timeout_seconds": 1.0})
        k.start_server()
        k.start_worker()
        old = k.worker
        pids = session_pids(old.pid)
        check(len(pids) >= 2, f"worker group: mpiexec and its rank in one session ({pids})")
        sub = k.subscriber()
        batches = {c: k.window_batches(c) for c in range(CYCLES)}
        k.feed(batches[0] + batches[1])
        got = k.collect(sub, [0, 1])
        k.feed(batches[2])
        # Right after the window of cycle 2 closed: mpiexec and its rank(s) at once.
        kill_session(old.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        old.wait(timeout=10)
        deadline = time.monotonic() + 5
        while session_pids(old.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        check(not session_pids(old.pid) and old.returncode == -signal.SIGKILL,
              f"every process of the old worker group ({pids}) killed with SIGKILL")
        st = k.status()
        print(f"  status right after the kill: connected {st.workers.connected}, cycle in "
              f"flight {st.workers.cycle_in_flight}, last cycle {st.last_cycle}", flush=True)
        deadline = killed_at + 8
        while st.workers.connected and time.monotonic() < deadline:
            time.sleep(0.1)
            st = k.status()
        lost_after = time.monotonic() - killed_at
        check(not st.workers.connected and lost_after >= 0.9,
              f"workers not connected {lost_after:.2f} s after the kill "
              f"(worker_timeout_seconds = 1.0; state {st.state})")
        check(k.t.rc.counters(st).get("worker_groups_lost") == 1, "worker_groups_lost = 1")
        # Anything published before the group died is in `got` too.
        while (m := sub.recv(0.3)) is not None:
            if m[0] == "rtda.analysis":
                got[m[1].cycle] = m[1]
        pre = sorted(got)
        print(f"  cycles published before the new group: {pre}", flush=True)
        k.worker = None
        k.start_worker()
        k.collect(sub, [2], into=got)
        k.feed(batches[3])
        k.collect(sub, [3], into=got)
        sub.close()
        for c in (2, 3):
            check(got[c].lineage.observations_used == k.window_count(c),
                  f"cycle {c}: {got[c].lineage.observations_used} observations used")
        check(got[0].lineage.restarted_from_cycle == -1 and
              got[3].lineage.restarted_from_cycle >= 0,
              f"lineage.restarted_from_cycle: {got[0].lineage.restarted_from_cycle} before the "
              f"kill (the initial ensemble), {got[3].lineage.restarted_from_cycle} after")
        print_joins(k)
        compare_bitwise(t, "the uninterrupted run", got, ref, [2, 3])
        k.shutdown()
        k.ok = True
    finally:
        k.cleanup()


def case_online_surrogate_restart(t):
    """The surrogate adapting online in the service: every analysis names the weights version
    that made its background, the checkpoints carry the adapter, and after kill -9 of the
    worker group a new group continues from a checkpoint bit for bit like an uninterrupted
    `rtda experiment` (same weights versions, same analyses)."""
    np = t.np
    k = Case(t, "online")
    try:
        k.make_data()
        weights = k.tmp / "vit.h5"
        k.run_cli(["train", "--config", str(k.cfg), "--data", str(k.nature_h5), "--validation",
                   str(k.nature_h5), "--out", str(weights), "--set", "surrogate.dim=16", "--set",
                   "surrogate.depth=1", "--set", "surrogate.heads=2", "--set",
                   "surrogate.steps=20", "--set", "surrogate.eval_every=10", "--set",
                   "surrogate.warmup_steps=2"], timeout=120)
        k.write_config(**{"model.kind": "vit", "surrogate.weights": str(weights),
                          "surrogate.online": True, "surrogate.online_lr": 1e-3,
                          "surrogate.online_steps": 2, "surrogate.online_batch": 4,
                          "surrogate.online_window": 1, "server.filter": "ensf",
                          "server.heartbeat_seconds": 0.2,
                          "server.worker_timeout_seconds": 1.0})
        archive = k.tmp / "experiment.h5"
        k.run_cli(["experiment", "--config", str(k.cfg), "--filter", "ensf", "--out",
                   str(archive)], timeout=120)
        with t.h5py.File(archive, "r") as f:
            ref = {c: (np.asarray(f["mean"][c], dtype=np.float64),
                       np.asarray(f["spread"][c], dtype=np.float64),
                       float(f["rmse_analysis"][c])) for c in range(CYCLES)}
            versions = [int(v) for v in f["surrogate_version"][...]]
        check(versions[-1] > 0, f"the experiment's surrogate adapted (versions {versions})")
        k.start_server()
        k.start_worker()
        sub = k.subscriber()
        batches = {c: k.window_batches(c) for c in range(CYCLES)}
        k.feed(batches[0] + batches[1])
        got = k.collect(sub, [0, 1])
        k.feed(batches[2])
        kill_session(k.worker.pid, signal.SIGKILL)
        k.worker.wait(timeout=10)
        time.sleep(1.5)  # past worker_timeout_seconds: the server declares the group lost
        while (m := sub.recv(0.3)) is not None:
            if m[0] == "rtda.analysis":
                got[m[1].cycle] = m[1]
        k.worker = None
        k.start_worker()
        k.collect(sub, [2], into=got)
        k.feed(batches[3])
        k.collect(sub, [3], into=got)
        sub.close()
        for c in range(CYCLES):
            lin = got[c].lineage
            want = "vit:vit.h5" + (f"+online.v{versions[c]}" if versions[c] else "")
            check(lin.surrogate_version == versions[c] and lin.model == want,
                  f"cycle {c}: lineage {lin.model!r} v{lin.surrogate_version}, expected "
                  f"{want!r} v{versions[c]}")
        ckpts = sorted((k.tmp / "data" / "checkpoints").glob("checkpoint-*.h5"))
        check(ckpts, "checkpoints written")
        with t.h5py.File(ckpts[-1], "r") as f:
            check("surrogate_online" in f and "current" in f["surrogate_online"],
                  f"{ckpts[-1].name} holds the adapter (group surrogate_online)")
        print_joins(k)
        compare_bitwise(t, "rtda experiment", got, ref, range(CYCLES))
        k.shutdown()
        k.ok = True
    finally:
        k.cleanup()


def case_device_lineage(t):
    """The worker group started with --device cpu names its device and toolchain in its
    hello: the server logs them, Status.workers shows them, and the published analysis'
    lineage carries them (device "cpu", the processor, the host compiler) to the Python
    client too, the same three that `rtda experiment --device cpu` writes into its archive."""
    k = Case(t, "device-lineage")
    try:
        k.make_data()
        k.start_server()
        w = k.start_worker(["--device", "cpu"]).workers
        sub = k.subscriber()
        k.feed(k.window_batches(0))
        an = k.collect(sub, [0])[0]
        sub.close()
        lin = an.lineage
        check(lin.device == "cpu" and lin.device_name.strip() != "",
              f"lineage: device {lin.device!r} on {lin.device_name!r}")
        check(lin.toolchain.startswith(("GCC ", "clang ")),
              f"lineage toolchain {lin.toolchain!r} names the host compiler")
        check((w.device, w.device_name, w.toolchain) ==
              (lin.device, lin.device_name, lin.toolchain),
              f"Status.workers: {w.device!r}, {w.device_name!r}, {w.toolchain!r}")
        log = Path(k.server_log).read_text(errors="replace")
        check(f"device cpu ({lin.device_name}; {lin.toolchain})" in log,
              "the server logs the group's device when it joins")
        ds = t.rc.analysis_dataset(an)
        check((ds.attrs["lineage_device"], ds.attrs["lineage_device_name"],
               ds.attrs["lineage_toolchain"]) == (lin.device, lin.device_name, lin.toolchain),
              "the Python client's dataset attributes carry the lineage's device")
        archive = k.tmp / "experiment.h5"
        k.run_cli(["experiment", "--config", str(k.cfg), "--filter", "letkf", "--device", "cpu",
                   "--set", "experiment.cycles=1", "--out", str(archive)], timeout=90)
        with t.h5py.File(archive, "r") as f:
            got = tuple(f.attrs[n].decode() if isinstance(f.attrs[n], bytes) else f.attrs[n]
                        for n in ("device", "device_name", "device_toolchain"))
        check(got == (lin.device, lin.device_name, lin.toolchain),
              f"rtda experiment --device cpu archives {got}")
        k.shutdown()
        k.ok = True
    finally:
        k.cleanup()


def case_bad_input(t):
    pb, rc = t.pb, t.rc
    k = Case(t, "bad-input")
    try:
        k.write_config(**{"experiment.nature_file": "", "limits.max_message_mb": 1,
                          "limits.max_batch_observations": 1000})
        k.start_server()

        def obs(i, **kw):
            o = pb.Observation(id=i, time_seconds=0.0, level=i % 2, x_m=1000.0 * (i % 1000),
                               y_m=5.0e6, value=1.0, error_sd=1.0, op=pb.OPERATOR_LINEAR_K)
            for f, v in kw.items():
                setattr(o, f, v)
            return o

        def batch(seq, n, version=pb.PROTOCOL_VERSION_1, source="bad-input"):
            b = pb.ObservationBatch(version=version, source=source, seq=seq)
            b.observations.extend(obs(i) for i in range(n))
            return b

        def send(payload, endpoint="ingest", timeout=5.0):
            reply = rc.send_raw(k.ep[endpoint], [b"", payload], timeout_s=timeout)
            if reply is None:
                raise Failure(f"no reply on {endpoint} within {timeout:g} s")
            m = pb.IngestAck() if endpoint == "ingest" else pb.ControlReply()
            m.ParseFromString(reply[-1])
            return m

        def still_alive(after):
            st = k.status()
            check(k.server.poll() is None and st.state != "",
                  f"the server answers status after {after} (state {st.state})")

        name = rc.ack_status_name
        # garbage
        garbage = b"\xff" * 12 + b" this is not an ObservationBatch"
        ack = send(garbage)
        check(ack.status == pb.ACK_ERROR and ack.error,
              f"garbage: {name(ack.status)} ({ack.error!r})")
        still_alive("garbage")
        # truncated
        whole = batch(1, 20).SerializeToString()
        cut = whole[:len(whole) - 7]
        try:
            pb.ObservationBatch().ParseFromString(cut)
            parses = True
        except Exception:  # noqa: BLE001 - expected: a truncated submessage does not parse
            parses = False
        ack = send(cut)
        if parses:
            check(ack.status in (pb.ACK_ACCEPTED, pb.ACK_REJECTED, pb.ACK_ERROR),
                  f"truncated (still parses): {name(ack.status)} ({ack.error!r})")
        else:
            check(ack.status == pb.ACK_ERROR and "parse" in ack.error,
                  f"truncated batch ({len(cut)} of {len(whole)} bytes): {name(ack.status)} "
                  f"({ack.error!r})")
        still_alive("a truncated batch")
        # oversize: ~1.5 MiB (limits.max_message_mb = 1)
        big = batch(2, 0)
        big.truth.time_seconds = 0.0
        big.truth.grid_n = GRID_N
        big.truth.q.extend([0.5] * (3 * (1 << 20) // 16))  # 8 bytes each: ~1.5 MiB
        payload = big.SerializeToString()
        check(1.4 * (1 << 20) < len(payload) < 1.6 * (1 << 20),
              f"oversize message of {len(payload)} bytes")
        ack = send(payload, timeout=10.0)
        check(ack.status == pb.ACK_ERROR and "max_message_mb" in ack.error,
              f"oversize: {name(ack.status)} ({ack.error!r})")
        still_alive("an oversize message")
        # unknown version
        ack = send(batch(3, 2, version=7).SerializeToString())
        check(ack.status == pb.ACK_REJECTED and "version" in ack.error and ack.seq == 3,
              f"version = 7: {name(ack.status)} ({ack.error!r})")
        still_alive("version 7")
        # bad observations among good ones
        b = batch(4, 10)
        b.observations[2].value = float("nan")
        b.observations[5].x_m = 1e12
        b.observations[7].level = 5
        ack = send(b.SerializeToString())
        fields_ = {r.index: r.field for r in ack.rejections}
        check(ack.status == pb.ACK_ACCEPTED and ack.accepted == 7 and ack.rejected == 3,
              f"bad observations: {name(ack.status)}, accepted {ack.accepted}, rejected "
              f"{ack.rejected}")
        check(fields_ == {2: "value", 5: "x_m", 7: "level"},
              f"rejections name the fields: {fields_} "
              f"({'; '.join(r.reason for r in ack.rejections)})")
        check(all(r.id == b.observations[r.index].id for r in ack.rejections),
              "rejections carry the observations' ids")
        still_alive("bad observations")
        # over limits.max_batch_observations
        ack = send(batch(5, 1001).SerializeToString())
        check(ack.status == pb.ACK_REJECTED and "max_batch_observations" in ack.error,
              f"1001 observations: {name(ack.status)} ({ack.error!r})")
        still_alive("an over-limit batch")
        # the column form: mismatched columns refuse the batch; good ones count after the
        # messages (indices continue), with per-observation rejections as for messages
        cb = batch(6, 2)
        cb.columns.id.extend([100, 101, 102])
        cb.columns.time_seconds.extend([0.0, 0.0, 0.0])
        cb.columns.level.extend([0, 1, 0])
        cb.columns.x_m.extend([0.0, 1.0e6, -5.0])
        cb.columns.y_m.extend([0.0, 0.0, 0.0])
        cb.columns.value.extend([1.0, 2.0, 3.0])
        cb.columns.error_sd.extend([1.0, 1.0])  # one short
        cb.columns.op.extend([0, 0, 0])
        ack = send(cb.SerializeToString())
        check(ack.status == pb.ACK_REJECTED and "columns.error_sd" in ack.error,
              f"short column: {name(ack.status)} ({ack.error!r})")
        cb.columns.error_sd.append(1.0)
        ack = send(cb.SerializeToString())
        check(ack.status == pb.ACK_ACCEPTED and ack.accepted == 4 and ack.rejected == 1 and
              [(r.index, r.id, r.field) for r in ack.rejections] == [(4, 102, "x_m")],
              f"columns: {name(ack.status)} accepted {ack.accepted} rejected {ack.rejected} "
              f"{[(r.index, r.id, r.field) for r in ack.rejections]}")
        still_alive("column batches")
        # garbage on the control endpoint
        reply = send(garbage, endpoint="control")
        check(not reply.ok and reply.error, f"control garbage: ok={reply.ok} ({reply.error!r})")
        still_alive("control garbage")
        c = k.counters()
        check(c.get("observations_accepted") == 11 and c.get("batches_accepted") == 2,
              f"only the 7 + 4 good observations were stored (observations_accepted "
              f"{c.get('observations_accepted')}, batches_accepted {c.get('batches_accepted')})")
        k.shutdown()
        check(k.server.poll() is not None and k.server.returncode == 0,
              f"clean shutdown (exit {k.server.returncode})")
        k.ok = True
    finally:
        k.cleanup()


def read_keys(path):
    keys = {}
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        for name in ("public-key", "secret-key"):
            if line.startswith(name):
                keys[name] = line.split("=", 1)[1].strip().strip('"')
    return keys


def curve_dealer(ctx, k, endpoint, server_pub, who, socks):
    """A DEALER on case k's endpoint, a CURVE client with the key pair `who`.key_secret of
    k.tmp (plain when who is None); kept in `socks` for the case to close."""
    import zmq
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    if who is not None:
        kp = read_keys(k.tmp / f"{who}.key_secret")
        s.curve_serverkey = server_pub.encode()
        s.curve_publickey = kp["public-key"].encode()
        s.curve_secretkey = kp["secret-key"].encode()
    s.connect(k.ep[endpoint])
    socks.append(s)
    return s


def ask(s, payload, timeout):
    """Sends payload in the REQ envelope; the reply's payload, or None after timeout s."""
    import zmq
    s.send_multipart([b"", payload])
    if s.poll(int(timeout * 1000), zmq.POLLIN) == 0:
        return None
    return s.recv_multipart()[-1]


def case_curve(t, cert_file=False):
    """cert_file=False: the documented list forms (an allowed-keys file naming feeder.key, and
    one holding the Z85 key itself); True: feeder.key itself as the allowed-keys file."""
    pb, zmq = t.pb, t.zmq
    k = Case(t, "curve-cert" if cert_file else "curve")
    socks = []
    try:
        for n in ("server", "feeder", "other"):
            k.run_cli(["keys", "--out", str(k.tmp / n)])
        k.run_cli(["keys", "--out", str(k.tmp / "new-dir" / "spare")])
        check((k.tmp / "new-dir" / "spare.key_secret").exists(),
              "rtda keys makes the key directory it is given")
        server_pub = read_keys(k.tmp / "server.key")["public-key"]
        if cert_file:
            feeders = controls = k.tmp / "feeder.key"
        else:
            feeders, controls = k.tmp / "feeders.txt", k.tmp / "controls.txt"
            feeders.write_text("# allowed feeders\nfeeder.key sources=curve-*  # its sources\n")
            controls.write_text(read_keys(k.tmp / "feeder.key")["public-key"] + "  # feeder\n")
        # Least privilege: CURVE with no worker allow-list and no worker_allow_any refuses to
        # start, with the configuration exit code and the key named.
        k.write_config(**{"experiment.nature_file": "", "security.curve": True,
                          "security.server_key": str(k.tmp / "server.key_secret"),
                          "security.feeder_keys": str(feeders),
                          "security.control_keys": str(controls)})
        r = subprocess.run([t.server_bin, "--config", str(k.cfg)], env=t.env,
                           capture_output=True, text=True, timeout=30, cwd=k.tmp)
        said = (r.stdout + r.stderr).strip()
        check(r.returncode == 78 and "security.worker_keys" in said,
              f"CURVE without a worker allow-list refuses to start: exit {r.returncode}, "
              f"{said.splitlines()[-1] if said else ''!r}")
        k.write_config(**{"security.worker_keys": str(k.tmp / "other.key")})
        k.start_server(wait=False)
        ctx = zmq.Context.instance()

        def sock(endpoint, who):
            return curve_dealer(ctx, k, endpoint, server_pub, who, socks)

        req = pb.ControlRequest(version=pb.PROTOCOL_VERSION_1, command=pb.COMMAND_STATUS)
        ctl = sock("control", "feeder")
        reply = None
        deadline = time.monotonic() + 20
        while reply is None and time.monotonic() < deadline:
            if k.server.poll() is not None:
                raise Failure(f"rtda-server exited {k.server.returncode}:\n"
                              f"{log_tail(k.server_log)}")
            reply = ask(ctl, req.SerializeToString(), 1.0)
        r = pb.ControlReply()
        r.ParseFromString(reply or b"")
        check(reply is not None and r.ok, f"feeder keys on control: status answered "
              f"(state {r.status.state})")

        b = pb.ObservationBatch(version=pb.PROTOCOL_VERSION_1, source="curve-feeder", seq=1)
        b.observations.add(id=1, time_seconds=0.0, level=0, x_m=1.0e6, y_m=1.0e6, value=1.0,
                           error_sd=1.0, op=pb.OPERATOR_LINEAR_K)
        raw = ask(sock("ingest", "feeder"), b.SerializeToString(), 5.0)
        ack = pb.IngestAck()
        ack.ParseFromString(raw or b"")
        check(raw is not None and ack.status == pb.ACK_ACCEPTED and ack.accepted == 1,
              f"feeder keys on ingest: {t.rc.ack_status_name(ack.status)}, accepted "
              f"{ack.accepted}")

        if not cert_file:
            # The allow-list grants this key the sources curve-*: another name is refused.
            b2 = pb.ObservationBatch()
            b2.CopyFrom(b)
            b2.source, b2.seq = "radar-7", 1
            raw = ask(sock("ingest", "feeder"), b2.SerializeToString(), 5.0)
            ack = pb.IngestAck()
            ack.ParseFromString(raw or b"")
            check(raw is not None and ack.status == pb.ACK_REJECTED and
                  "not granted" in ack.error,
                  f"a source the key is not granted: {t.rc.ack_status_name(ack.status)} "
                  f"({ack.error!r})")

        # Clients the server must not answer: all four asked at once, then 2 s of silence.
        b.seq = 2
        refused = []
        for endpoint, payload in (("ingest", b.SerializeToString()),
                                  ("control", req.SerializeToString())):
            for who in ("other", None):
                s = sock(endpoint, who)
                s.send_multipart([b"", payload])
                refused.append((endpoint, who, s))
        time.sleep(2.0)
        for endpoint, who, s in refused:
            check(s.poll(0, zmq.POLLIN) == 0,
                  f"{'other keys' if who else 'a plain (NULL) socket'} on {endpoint}: no reply "
                  f"within 2 s")
        reply = ask(ctl, req.SerializeToString(), 5.0)
        r = pb.ControlReply()
        r.ParseFromString(reply or b"")
        counters = {c.name: c.value for c in r.status.counters}
        check(reply is not None and r.ok and counters.get("observations_accepted") == 1,
              f"the server still answers the feeder; observations_accepted = "
              f"{counters.get('observations_accepted')} (nothing from the refused clients)")
        shut = pb.ControlRequest(version=pb.PROTOCOL_VERSION_1, command=pb.COMMAND_SHUTDOWN)
        ask(ctl, shut.SerializeToString(), 5.0)
        try:
            k.server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
        k.ok = True
    finally:
        for s in socks:
            s.close(0)
        k.cleanup()


def case_curve_cert_file(t):
    case_curve(t, cert_file=True)


# ---------------------------------------------------------------------------------------------


def case_cli_control(t):
    """The rtda CLI's control verbs against a running server: status (table and JSON), pause,
    resume, set-filter (and a refused filter), checkpoint, shutdown (the server exits)."""
    import json
    k = Case(t, "cli-control")
    try:
        k.write_config(**{"experiment.nature_file": ""})
        k.start_server()
        ctl = ["--server", k.ep["control"]]
        table = k.run_cli(["status"] + ctl).stdout
        check("waiting-for-workers" in table and "latency" in table, f"status table:\n{table}")
        st = json.loads(k.run_cli(["status", "--json"] + ctl).stdout)
        check(st["state"] == "waiting-for-workers" and st["filter"] == "letkf",
              f"status --json: {st}")
        from google.protobuf import json_format
        ref = json_format.MessageToDict(k.status(), preserving_proto_field_name=True)
        check(set(st) == set(ref) and isinstance(st.get("counters", []), list),
              f"status --json is protobuf's JSON mapping of Status, as the Python client prints "
              f"it (keys {sorted(st)})")
        k.run_cli(["pause"] + ctl)
        check(json.loads(k.run_cli(["status", "--json"] + ctl).stdout)["state"] == "paused",
              "state after pause")
        k.run_cli(["resume"] + ctl)
        check(json.loads(k.run_cli(["status", "--json"] + ctl).stdout)["state"] != "paused",
              "state after resume")
        k.run_cli(["set-filter", "ensf"] + ctl)
        check(json.loads(k.run_cli(["status", "--json"] + ctl).stdout)["filter"] == "ensf",
              "filter after set-filter ensf")
        bad = subprocess.run([t.rtda, "set-filter", "kalman"] + ctl, env=t.env,
                             capture_output=True, text=True, timeout=30)
        check(bad.returncode != 0 and "kalman" in bad.stderr,
              f"set-filter kalman: exit {bad.returncode}, stderr {bad.stderr!r}")
        out = k.run_cli(["checkpoint"] + ctl).stdout
        check("checkpoint" in out, f"checkpoint reply: {out!r}")
        k.run_cli(["shutdown"] + ctl)
        try:
            k.server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            raise Failure("rtda-server still running 10 s after `rtda shutdown`")
        check(k.server.returncode == 0, f"rtda-server exit status {k.server.returncode}")
        print("  ok: status, status --json, pause, resume, set-filter, checkpoint, shutdown")
        k.ok = True
    finally:
        k.cleanup()


def free_tcp_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def case_metrics(t):
    """server.metrics serves the Prometheus text format over HTTP on loopback, with the
    service's counters, after an observation batch was accepted."""
    import urllib.request
    pb, rc = t.pb, t.rc
    k = Case(t, "metrics")
    try:
        port = free_tcp_port()
        k.write_config(**{"experiment.nature_file": "",
                          "server.metrics": f"tcp://127.0.0.1:{port}"})
        k.start_server()
        b = pb.ObservationBatch(version=pb.PROTOCOL_VERSION_1, source="metrics", seq=1)
        b.observations.add(id=1, time_seconds=0.0, level=0, x_m=0.0, y_m=0.0, value=1.0,
                           error_sd=1.0, op=pb.OPERATOR_LINEAR_K)
        ack = pb.IngestAck()
        ack.ParseFromString(rc.send_raw(k.ep["ingest"], [b.SerializeToString()], timeout_s=5.0)[-1])
        check(ack.status == pb.ACK_ACCEPTED, f"ack {ack}")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            body = r.read().decode()
            ctype = r.headers.get("Content-Type", "")
        check("text/plain" in ctype and "version=0.0.4" in ctype, f"content type {ctype!r}")
        check("# TYPE rtda_observations_accepted_total counter" in body and
              "\nrtda_observations_accepted_total 1\n" in body, f"metrics body:\n{body[:1500]}")
        check("rtda_worker_connected 0" in body, "worker connectivity gauge missing")
        print("  ok: GET /metrics: Prometheus text with the service's counters")
        k.ok = True
    finally:
        k.cleanup()


def member_mean_spread(np, q):
    """Mean and (n-1) spread over axis 0 summed member by member in order, as the worker
    does (numpy's pairwise sums would differ in the last bits)."""
    acc = np.zeros_like(q[0])
    for m in range(q.shape[0]):
        acc = acc + q[m]
    mean = acc / q.shape[0]
    var = np.zeros_like(q[0])
    for m in range(q.shape[0]):
        var = var + (q[m] - mean) * (q[m] - mean)
    return mean, np.sqrt(var / (q.shape[0] - 1))


def case_off_grid_ensf(t):
    """An observation between grid points reaches a worker group running paper-mode EnSF
    (defined per grid point) with adaptive inflation: the cycle is still published, with
    that observation counted as refused, and the worker group survives. `rtda analyze` of
    the same window from the same prior gives the service's analysis bit for bit (the same
    rules: off-grid observations left out, the inflation estimate, the cycle's randomness)."""
    np = t.np
    k = Case(t, "off-grid")
    try:
        k.make_data()
        k.write_config(**{"server.filter": "ensf", "inflation.mode": "adaptive"})
        k.start_server()
        k.start_worker()
        sub = k.subscriber()
        batches = k.window_batches(0)
        dx = 2.0e7 / 32  # N32 default L
        batches[0].observations[0].x_m += 0.5 * dx
        k.feed(batches)
        got = k.collect(sub, [0])
        sub.close()
        a = got[0]
        check(a.diagnostics["observations_rejected"] == 1.0 and
              a.lineage.observations_used == k.window_count(0) - 1,
              f"rejected {a.diagnostics['observations_rejected']}, used "
              f"{a.lineage.observations_used} of {k.window_count(0)}")
        st = k.status()
        check(st.workers.connected and not st.last_error, f"workers {st.workers}, error "
              f"{st.last_error!r}")
        print("  ok: the off-grid observation was left out and counted; the group lives on")
        # A late joiner asks the control endpoint for the newest analysis, with its fields.
        r = t.rc.control(k.ep["control"], t.pb.COMMAND_LATEST_ANALYSIS, with_fields=True)
        check(r.ok and r.analysis.cycle == 0 and list(r.analysis.mean) == list(a.mean),
              f"latest analysis: ok {r.ok} cycle {r.analysis.cycle} error {r.error!r}")
        print("  ok: COMMAND_LATEST_ANALYSIS returns the published analysis")
        # The same window offline: the initial ensemble (analysed at t0 without a forecast)
        # as the prior, the observation file with the same observation moved off the grid.
        prior, obs_file = k.tmp / "prior.h5", k.tmp / "obs-off-grid.h5"
        k.run_cli(["ensemble", "--config", str(k.cfg), "--nature", str(k.nature_h5), "--out",
                   str(prior)])
        with t.h5py.File(prior, "r+") as f:
            f.attrs["time_seconds"] = float(k.obs.cycle_time[0])  # the state's analysis time
        shutil.copy(k.obs_h5, obs_file)
        first = int(np.nonzero(k.window == 0)[0][0])
        with t.h5py.File(obs_file, "r+") as f:
            f["x"][first] = f["x"][first] + 0.5 * dx
        post = k.tmp / "posterior.h5"
        r = k.run_cli(["analyze", "--config", str(k.cfg), "--prior", str(prior), "--obs",
                       str(obs_file), "--filter", "ensf", "--out", str(post)])
        check("cycle 0" in r.stdout and "1 rejected" in r.stdout, f"rtda analyze: {r.stdout}")
        with t.h5py.File(post, "r") as f:
            mean, spread = member_mean_spread(np, np.asarray(f["q"][...], dtype=np.float64))
        m, s, _ = fields(t, a)
        check(np.array_equal(mean, m) and np.array_equal(spread, s),
              f"rtda analyze equals the service's analysis bitwise (max |diff| mean "
              f"{float(np.max(np.abs(mean - m))):.3g}, spread "
              f"{float(np.max(np.abs(spread - s))):.3g})")
        check(a.diagnostics["inflation_factor"] > 1.0,
              f"inflation applied ({a.diagnostics['inflation_factor']})")
        print("  ok: rtda analyze of the window is the service's analysis, bit for bit")
        k.ok = True
    finally:
        k.cleanup()


def case_hostile_ingest(t):
    """What a hostile or confused feeder can no longer do: empty and unknown-field batches,
    markers and truths far ahead, absurd values, a reused seq with other content; and what a
    restarted feeder can: ask where its source stands and resume (rtda feed)."""
    pb, rc = t.pb, t.rc
    k = Case(t, "hostile")
    try:
        k.make_data()
        k.write_config(**{"window.max_windows_ahead": 8})
        k.start_server()
        name = rc.ack_status_name
        t0 = k.t0
        dt = 12 * 3600.0

        def send(b, raw=None):
            reply = rc.send_raw(k.ep["ingest"], [b"", raw if raw is not None else
                                                 b.SerializeToString()], timeout_s=5.0)
            if reply is None:
                raise Failure("no ack within 5 s")
            ack = pb.IngestAck()
            ack.ParseFromString(reply[-1])
            return ack

        def one(seq, value=1.0, source="hostile", **kw):
            b = pb.ObservationBatch(version=pb.PROTOCOL_VERSION_1, source=source, seq=seq, **kw)
            b.observations.add(id=seq, time_seconds=t0, level=0, x_m=1.0e6, y_m=1.0e6,
                               value=value, error_sd=1.0, op=pb.OPERATOR_LINEAR_K)
            return b

        ack = send(pb.ObservationBatch(version=pb.PROTOCOL_VERSION_1, source="hostile", seq=1))
        check(ack.status == pb.ACK_REJECTED and "empty batch" in ack.error,
              f"an empty batch: {name(ack.status)} ({ack.error!r})")
        # Unknown fields: a few bytes are skipped and not stored; many are refused unparsed.
        marker = b"UNKNOWN-FIELD-BYTES-" * 3
        small = one(2).SerializeToString() + bytes([0xFA, 0x01, len(marker)]) + marker
        ack = send(None, raw=small)
        check(ack.status == pb.ACK_ACCEPTED and ack.accepted == 1,
              f"a batch with 60 bytes of unknown fields (field 31): {name(ack.status)}")
        blob = b"x" * 100000
        # field 31, wire type 2, length 100000 as a varint
        length = bytearray()
        n = len(blob)
        while True:
            byte = n & 0x7F
            n >>= 7
            length.append(byte | (0x80 if n else 0))
            if not n:
                break
        big = one(3).SerializeToString() + bytes([0xFA, 0x01]) + bytes(length) + blob
        ack = send(None, raw=big)
        check(ack.status == pb.ACK_REJECTED and "unknown fields" in ack.error,
              f"a batch with 100 kB of unknown fields: {name(ack.status)} ({ack.error!r})")
        k.status()  # the log is committed by now
        log_bytes = b"".join(p.read_bytes() for p in (k.tmp / "data" / "log").glob("*.log"))
        check(marker not in log_bytes and b"x" * 1000 not in log_bytes,
              "the observation log holds no unknown-field bytes")
        # Markers and truths only near the front.
        far = t0 + 20 * dt
        ack = send(pb.ObservationBatch(version=pb.PROTOCOL_VERSION_1, source="hostile", seq=4,
                                       end_of_window_seconds=far))
        check(ack.status == pb.ACK_REJECTED and "end_of_window_seconds" in ack.error and
              "[0, 8]" in ack.error,
              f"a marker 20 windows ahead (max_windows_ahead = 8): {name(ack.status)} "
              f"({ack.error!r})")
        st = k.status()
        check(st.open_windows >= 1, "no window was closed by it")
        b = pb.ObservationBatch(version=pb.PROTOCOL_VERSION_1, source="hostile", seq=5)
        b.truth.time_seconds = far
        b.truth.grid_n = GRID_N
        b.truth.q.extend([0.0] * (2 * GRID_N * GRID_N))
        ack = send(b)
        check(ack.status == pb.ACK_REJECTED and "truth.time_seconds" in ack.error,
              f"a truth 20 windows ahead: {name(ack.status)} ({ack.error!r})")
        # Absurd values.
        ack = send(one(6, value=1e300))
        check(ack.status == pb.ACK_ACCEPTED and ack.rejected == 1 and
              ack.rejections[0].field == "value" and "qc.max_abs_kelvin" in
              ack.rejections[0].reason,
              f"value = 1e300 K: refused ({ack.rejections[0].reason if ack.rejections else ''!r})")
        # A reused seq: the same content is a duplicate, other content a conflict.
        ack = send(one(7, value=2.0))
        check(ack.status == pb.ACK_ACCEPTED, "seq 7 stored")
        ack = send(one(7, value=2.0))
        check(ack.status == pb.ACK_DUPLICATE, f"seq 7 again, same content: {name(ack.status)}")
        ack = send(one(7, value=3.0))
        check(ack.status == pb.ACK_CONFLICT and "different content" in ack.error,
              f"seq 7 again, other content: {name(ack.status)} ({ack.error!r})")
        with rc.Feeder(k.ep["ingest"]) as f:
            check(f.position("hostile") == 7, "a position query: source 'hostile' stands at 7")
            check(f.position("nobody") is None, "a position query for an unknown source: none")

        # After a restart the records are still there (content hashes included).
        os.killpg(k.server.pid, signal.SIGKILL)
        k.server.wait(timeout=10)
        k.start_server()
        check(send(one(7, value=2.0)).status == pb.ACK_DUPLICATE and
              send(one(7, value=3.0)).status == pb.ACK_CONFLICT,
              "after kill -9 and restart: seq 7 is still a duplicate / a conflict")

        # rtda feed resumes where its source stands.
        args = ["feed", "--obs", str(k.obs_h5), "--server", k.ep["ingest"], "--source", "file",
                "--batch", "700"]
        r = k.run_cli(args + ["--cycles", "2"])
        check("resumed" not in r.stdout, f"first feed of 2 windows: {r.stdout.strip()}")
        r = k.run_cli(args + ["--cycles", "3"])
        check("resumed: the server held source batches through seq 5; 6 not sent again" in
              r.stdout and " 0 duplicate batches" in r.stdout and
              f"{k.window_count(2)} new observations accepted" in r.stdout,
              f"second feed of 3 windows resumes: {r.stdout.strip()!r}")
        counters = k.counters()
        total = 2 + sum(k.window_count(c) for c in range(3))  # seq 2 and 7 (6 was refused)
        check(counters.get("observations_accepted") == total,
              f"observations_accepted = {counters.get('observations_accepted')} = {total}")
        k.shutdown()
        k.ok = True
    finally:
        k.cleanup()


def case_least_privilege(t):
    """Endpoints reachable from the network without CURVE refuse to start (configuration exit
    code 78) unless server.insecure says the deployment is deliberately so."""
    k = Case(t, "privilege")
    try:
        port = free_tcp_port()
        k.write_config(**{"experiment.nature_file": "",
                          "server.ingest": f"tcp://0.0.0.0:{port}"})
        r = subprocess.run([t.server_bin, "--config", str(k.cfg)], env=t.env,
                           capture_output=True, text=True, timeout=30, cwd=k.tmp)
        said = (r.stdout + r.stderr).strip()
        check(r.returncode == 78 and "server.ingest" in said and "server.insecure" in said,
              f"ingest on 0.0.0.0 without CURVE: exit {r.returncode} "
              f"({said.splitlines()[-1] if said else ''!r})")
        k.write_config(**{"server.ingest": k.ep["ingest"], "limits.max_batch_observations": 0})
        r = subprocess.run([t.server_bin, "--config", str(k.cfg)], env=t.env,
                           capture_output=True, text=True, timeout=30, cwd=k.tmp)
        check(r.returncode == 78, f"a refused configuration value: exit {r.returncode}")
        k.write_config(**{"server.ingest": f"tcp://0.0.0.0:{port}", "server.insecure": True,
                          "limits.max_batch_observations": 1000})
        st = k.start_server()
        check(st.state == "waiting-for-workers",
              "with server.insecure = true the same configuration starts")
        k.shutdown()
        k.ok = True
    finally:
        k.cleanup()


def case_exactly_once(t):
    """A crash between "cycle k is durable" and "cycle k is sent to subscribers" (RTDA_FAULT)
    neither loses k (it is in the archive and behind COMMAND_LATEST_ANALYSIS) nor sends it
    twice; the analyses stay those of the uninterrupted run."""
    pb = t.pb
    ref = reference_run(t)
    for point in ("after-latest", "after-archive"):
        k = Case(t, f"once-{point}")
        try:
            k.make_data()
            k.start_server()
            k.start_worker()
            sub = k.subscriber()
            batches = {c: k.window_batches(c) for c in range(CYCLES)}
            k.feed(batches[0])
            got = k.collect(sub, [0])
            os.killpg(k.server.pid, signal.SIGKILL)  # the worker group stays and rejoins
            k.server.wait(timeout=10)
            # The next server dies right after cycle 1 is durable.
            env = dict(t.env)
            t.env["RTDA_FAULT"] = f"{point}:1"
            try:
                k.start_server()
            finally:
                t.env = env
            k.wait_connected()
            k.feed(batches[1])
            k.server.wait(timeout=30)
            check(k.server.returncode == 99, f"RTDA_FAULT={point}:1: the server exited 99")
            k.start_server()
            st = k.wait_connected()
            check(st.last_cycle == 1, f"restarted: last cycle {st.last_cycle} (1 is durable)")
            latest = t.rc.control(k.ep["control"], pb.COMMAND_LATEST_ANALYSIS, with_fields=True)
            check(latest.ok and latest.analysis.cycle == 1,
                  f"LATEST_ANALYSIS: cycle {latest.analysis.cycle}")
            got[1] = latest.analysis
            sub.close()
            sub = k.subscriber()  # subscribed to the restarted server before anything is sent
            seen = []
            k.feed(batches[2] + batches[3])
            deadline = time.monotonic() + 40
            while not {2, 3} <= set(seen) and time.monotonic() < deadline:
                m = sub.recv(0.5)
                if m is not None and m[0] == "rtda.analysis":
                    seen.append(m[1].cycle)
                    got[m[1].cycle] = m[1]
            while (m := sub.recv(1.0)) is not None:
                if m[0] == "rtda.analysis":
                    seen.append(m[1].cycle)
            sub.close()
            check(sorted(seen) == [2, 3], f"after the restart the subscriber saw cycles {seen} "
                  f"(1 not again)")
            files = sorted(p.name for p in (k.tmp / "data" / "analyses").glob("analysis-*"))
            check(files == [f"analysis-{c:08d}.h5" for c in range(CYCLES)],
                  f"the archive holds each cycle once: {files}")
            compare_bitwise(t, "the uninterrupted run", got, ref, range(CYCLES))
            k.shutdown()
            k.ok = True
        finally:
            k.cleanup()


def case_compaction_restart(t):
    """After checkpoints the log is compacted (the segments of checkpointed windows deleted,
    a base record keeps the idempotency records) and the analysis archive keeps its newest
    files; a server restarted on the compacted log still knows old batches as duplicates, and
    a new worker group continues from the checkpoint bit for bit."""
    pb = t.pb
    ref = reference_run(t)
    k = Case(t, "compaction")
    try:
        k.make_data()
        k.write_config(**{"server.archive_keep_cycles": 2, "server.checkpoint_keep": 1})
        k.start_server()
        k.start_worker()
        sub = k.subscriber()
        batches = {c: k.window_batches(c) for c in range(CYCLES)}
        k.feed(batches[0] + batches[1] + batches[2])
        got = k.collect(sub, [0, 1, 2])
        deadline = time.monotonic() + 20
        while k.status().newest_checkpoint_cycle < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        st = k.status()
        segs = sorted(p.name for p in (k.tmp / "data" / "log").glob("segment-*.log"))
        counters = t.rc.counters(st)
        # Every checkpoint compacts: what is left is the newest base and what follows it.
        check(st.newest_checkpoint_cycle == 2 and "segment-0000000000000000.log" not in segs
              and len(segs) <= 2 and counters.get("log_bytes_compacted", 0) > 0,
              f"checkpoint 2: the log's first segments are gone ({segs}, "
              f"{counters.get('log_bytes_compacted')} bytes compacted)")
        files = sorted(p.name for p in (k.tmp / "data" / "analyses").glob("analysis-*"))
        check(files == ["analysis-00000001.h5", "analysis-00000002.h5"],
              f"archive_keep_cycles = 2: {files}")
        os.killpg(k.server.pid, signal.SIGKILL)
        k.server.wait(timeout=10)
        kill_session(k.worker.pid)
        k.worker.wait(timeout=10)
        k.worker = None
        k.start_server()
        acks = k.feed([batches[0][0]], expect=pb.ACK_DUPLICATE)
        check(acks[0].accepted == len(batches[0][0].observations),
              "after the restart a batch of window 0 (compacted away) is still a duplicate")
        k.start_worker()
        k.feed(batches[3])
        k.collect(sub, [3], into=got)
        sub.close()
        check(got[3].lineage.observations_used == k.window_count(3),
              f"cycle 3: {got[3].lineage.observations_used} observations used")
        compare_bitwise(t, "the uninterrupted run", got, ref, range(CYCLES))
        k.shutdown()
        k.ok = True
    finally:
        k.cleanup()


def case_backlog(t):
    """Windows closing faster than cycles run: with server.behind_policy = "degrade" the
    oldest of a backlog are forecast only (filter "none", flagged degraded), the newest
    analysed; status and each Analysis say how far behind the service is."""
    pb, rc = t.pb, t.rc
    k = Case(t, "backlog")
    try:
        k.make_data()
        k.write_config(**{"server.max_backlog_cycles": 1})
        k.start_server()
        k.start_worker()
        check(rc.control(k.ep["control"], pb.COMMAND_PAUSE).ok, "paused")
        sub = k.subscriber()
        for c in range(CYCLES):
            k.feed(k.window_batches(c))
        st = k.status()
        check(st.backlog_cycles == CYCLES, f"status: backlog_cycles = {st.backlog_cycles}")
        check(rc.control(k.ep["control"], pb.COMMAND_RESUME).ok, "resumed")
        got = k.collect(sub, range(CYCLES))
        sub.close()
        for c in range(CYCLES):
            a = got[c]
            want = c < CYCLES - 2  # windows more than max_backlog_cycles behind the newest
            check(a.degraded == want and (a.filter == "none") == want and
                  a.backlog_cycles == CYCLES - 1 - c,
                  f"cycle {c}: degraded {a.degraded}, filter {a.filter}, backlog "
                  f"{a.backlog_cycles} ({a.degraded_reason!r})")
        check(k.counters().get("cycles_degraded") == CYCLES - 2,
              f"cycles_degraded = {k.counters().get('cycles_degraded')}")
        check(k.status().backlog_cycles == 0, "caught up: backlog_cycles = 0")
        k.shutdown()
        k.ok = True
    finally:
        k.cleanup()


def case_damaged_log(t):
    """A damaged record followed by valid ones is acknowledged data, not a torn tail: the
    server refuses to start (exit 65) naming the file and the offset, and drops nothing."""
    pb, rc = t.pb, t.rc
    k = Case(t, "damaged-log")
    try:
        k.write_config(**{"experiment.nature_file": ""})
        k.start_server()
        with rc.Feeder(k.ep["ingest"]) as f:
            for seq in (1, 2, 3):
                b = pb.ObservationBatch(version=pb.PROTOCOL_VERSION_1, source="d", seq=seq)
                b.observations.add(id=seq, time_seconds=0.0, level=0, x_m=1.0e6, y_m=1.0e6,
                                   value=1.0, error_sd=1.0, op=pb.OPERATOR_LINEAR_K)
                check(f.send(b).status == pb.ACK_ACCEPTED, f"batch {seq} acked")
        k.shutdown()
        k.server.wait(timeout=15)
        seg = sorted((k.tmp / "data" / "log").glob("segment-*.log"))[0]
        data = bytearray(seg.read_bytes())
        data[16 + 8 + 10] ^= 0xFF  # inside the first record's payload
        seg.write_bytes(bytes(data))
        r = subprocess.run([t.server_bin, "--config", str(k.cfg)], env=t.env,
                           capture_output=True, text=True, timeout=30, cwd=k.tmp)
        said = (r.stdout + r.stderr).strip()
        check(r.returncode == 65 and seg.name in said and "offset" in said,
              f"restart on the damaged log: exit {r.returncode} "
              f"({said.splitlines()[-1] if said else ''!r})")
        check(seg.read_bytes() == bytes(data), "the damaged segment is left as it was")
        k.ok = True
    finally:
        k.cleanup()


def case_quality_control(t):
    """With qc.gross_error_sigmas, observations far from the background never reach the
    filter: the analysis lineage lists them with the reason, and status counts them for the
    source that sent them."""
    pb = t.pb
    k = Case(t, "qc")
    try:
        k.make_data()
        k.write_config(**{"qc.gross_error_sigmas": 10.0})
        k.start_server()
        k.start_worker()
        sub = k.subscriber()
        batches = k.window_batches(0)
        bad = pb.ObservationBatch(version=pb.PROTOCOL_VERSION_1, source="bad-feeder", seq=1)
        for i in range(3):
            bad.observations.add(id=10_000_000 + i, time_seconds=k.t0, level=0,
                                 x_m=1.0e6 * (i + 1), y_m=5.0e6, value=200.0, error_sd=1.0,
                                 op=pb.OPERATOR_LINEAR_K)
        k.feed([bad] + batches)
        got = k.collect(sub, [0])
        sub.close()
        lin = got[0].lineage
        refused_ids = {r.id for r in lin.refused}
        check({10_000_000, 10_000_001, 10_000_002} <= refused_ids and
              all("innovation" in r.reason for r in lin.refused),
              f"cycle 0: the three 200 K observations are refused in the lineage "
              f"({lin.observations_refused} refused in all, e.g. "
              f"{lin.refused[0].reason if lin.refused else ''!r})")
        check(lin.refused_by_reason.get("gross_error") == lin.observations_refused,
              f"refused_by_reason: {dict(lin.refused_by_reason)}")
        st = k.status()
        per_source = {x.source: x.observations_refused_qc for x in st.sources}
        check(per_source.get("bad-feeder") == 3,
              f"status counts them for their source: {per_source}")
        k.shutdown()
        k.ok = True
    finally:
        k.cleanup()


def case_lorenz96(t):
    """The second model through the same service: model.kind = "lorenz96" (40 variables on a
    ring). rtda observe makes the observations of the truth rtda experiment makes; a feeder
    sends them window by window; the published analyses (1 x 1 x 40 fields) equal rtda
    experiment's bit for bit, with the localized LETKF and with EnSF."""
    np = t.np
    cycles = 6
    for flt in ("letkf", "ensf"):
        print(f"  -- filter {flt}", flush=True)
        k = Case(t, f"lorenz96-{flt}")
        try:
            l96 = {"model.kind": "lorenz96", "experiment.nature_file": "",
                   "experiment.cycles": cycles, "experiment.cycle_hours": 6.0,
                   "ensemble.members": 8, "ensemble.initial_noise_sd_ms": 1.0,
                   "ensemble.climatology_index": 0, "letkf.localization_radius_km": 14.56,
                   "letkf.rtps": 0.0, "inflation.mode": "fixed", "inflation.factor": 1.04,
                   "server.filter": flt,
                   # windows close faster than cycles run here: analyse every one of them
                   "server.behind_policy": "queue"}
            k.write_config(**l96)
            k.run_cli(["observe", "--config", str(k.cfg), "--experiment", "linear", "--out",
                       str(k.obs_h5)])
            k.obs = t.rc.read_observation_file(str(k.obs_h5))
            k.window = k.obs.window_index()
            check(len(k.obs) == 40 * cycles and float(k.obs.cycle_time[0]) == 0.0,
                  f"rtda observe: {len(k.obs)} observations, first cycle at "
                  f"{float(k.obs.cycle_time[0])} s")
            archive = k.tmp / f"experiment-{flt}.h5"
            k.run_cli(["experiment", "--config", str(k.cfg), "--filter", flt, "--out",
                       str(archive)], timeout=90)
            with t.h5py.File(archive, "r") as f:
                check(f["mean"].shape == (cycles, 1, 1, 40),
                      f"the archive's mean has shape {f['mean'].shape}")
                ref = {c: (np.asarray(f["mean"][c], dtype=np.float64).ravel(),
                           np.asarray(f["spread"][c], dtype=np.float64).ravel())
                       for c in range(cycles)}
            k.start_server()
            k.start_worker()
            sub = k.subscriber()
            for c in range(cycles):
                idx = np.nonzero(k.window == c)[0]
                k.feed([t.rc.make_batch("l96-feeder", 1 + c, k.obs, idx,
                                        end_of_window=float(k.obs.cycle_time[c]))])
            got = k.collect(sub, range(cycles))
            sub.close()
            for c in range(cycles):
                a = got[c]
                m = np.asarray(a.mean, dtype=np.float64)
                sp = np.asarray(a.spread, dtype=np.float64)
                check(a.grid_n == 40 and a.lineage.observations_used == 40,
                      f"cycle {c}: grid_n {a.grid_n}, {a.lineage.observations_used} used")
                check(np.array_equal(m, ref[c][0]) and np.array_equal(sp, ref[c][1]),
                      f"cycle {c}: mean and spread equal rtda experiment's bitwise (max |diff| "
                      f"{float(np.max(np.abs(m - ref[c][0]))):.3g})")
            print(f"  ok: {cycles} Lorenz-96 analyses ({flt}) equal rtda experiment's bitwise")
            k.shutdown()
            k.ok = True
        finally:
            k.cleanup()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_service_arguments(ap, 150.0)
    ap.add_argument("--case", choices=CASES + ["all"], default="all", help="run one case")
    a = ap.parse_args()
    t = Tools(a)
    for b in (t.rtda, t.server_bin, t.worker_bin):
        if not os.access(b, os.X_OK):
            print(f"FAIL: {b} is not an executable", file=sys.stderr)
            return 1
    ok = run_cases(CASES if a.case == "all" else [a.case],
                   lambda name: globals()[f"case_{name}"](t), a.time_limit, skip=(Skip,))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
