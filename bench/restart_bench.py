#!/usr/bin/python3
"""Restart time and memory of rtda-server against the length of its history.

For each history H (observations fed before the restart) and two situations:

  uncompacted  no worker group: nothing is analysed, so nothing is checkpointed and nothing is
               compacted (what the server did with any history before log compaction existed:
               the whole log is replayed on every start);
  compacted    the same history fed with a 1-rank worker group running (letkf,
               server.checkpoint_every 1, archive_keep_cycles --archive-keep): every window is
               analysed and checkpointed, and the log is compacted after each checkpoint. The
               feeder is paced as in service: window c is sent once cycle c - 1 - --ahead is
               published, so batches arrive between checkpoints;
  compacted-burst  (optional) the same, but the whole history sent at once with `rtda feed`
               before the group has analysed much (batches all precede the first checkpoint);

the server is shut down cleanly (COMMAND_SHUTDOWN), started again on the same data_dir, and
measured: wall time from exec until the control endpoint answers STATUS, VmRSS / VmHWM of the
server right then (/proc/PID/status), log bytes and segments (Status), and the number of
batches replayed (the server's "recovered: N batches" line). A Markdown table is printed.

Data: an N32 nature run with enough states and its "linear" observations (2048 per window),
made with the rtda CLI in a temporary directory; every process is started in its own session
and killed (whole session) in any case; the run is bounded by --time-limit.

  build/python-venv/bin/python bench/restart_bench.py --build build [--histories 1e6,1e7]

Needs the Python client installed (build/python-venv, made by the CTest fixture
python.venv_install: tests/python/make_venv.sh), as tests/service.
"""

import argparse
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests" / "service"))
from harness import kill_session, session_pids  # noqa: E402  (the service tests' helpers)
OBS_PER_WINDOW = 2048  # N32 "linear": every other grid point of both levels


class Failure(Exception):
    pass


class TimeLimit(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# Processes: each in a session of its own, the whole session killed at the end.


def stop_process(p, grace=3.0):
    """SIGTERM, then SIGKILL, to p's process group, then whatever is left of its session."""
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
    try:
        p.wait(timeout=1)
    except subprocess.TimeoutExpired:
        print(f"warning: pid {p.pid} still running", file=sys.stderr)


def kill9_session(p, timeout=10.0):
    """kill -9 of p's whole session (server, or mpiexec and its ranks); waits for p."""
    if p is None:
        return
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    kill_session(p.pid)
    try:
        p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass
    deadline = time.monotonic() + 5
    while session_pids(p.pid) and time.monotonic() < deadline:
        kill_session(p.pid)
        time.sleep(0.05)


def proc_status(pid):
    """VmRSS and VmHWM of `pid` in MiB (None when gone)."""
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                k, v = line.split(":", 1)
                out[k] = int(v.split()[0]) / 1024.0
    except OSError:
        return None, None
    return out.get("VmRSS"), out.get("VmHWM")


def dir_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total


def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_toml(path, sections, comment):
    text = [f"# {comment}"]
    for sec, kv in sections.items():
        text.append(f"\n[{sec}]")
        text.extend(f"{k} = {toml_value(v)}" for k, v in kv.items())
    Path(path).write_text("\n".join(text) + "\n")


class Tools:
    def __init__(self, a):
        build = Path(a.build).resolve()
        self.rtda = str(Path(a.rtda or build / "client" / "rtda").resolve())
        self.server_bin = str(Path(a.server_bin or build / "server" / "rtda-server").resolve())
        self.worker_bin = str(Path(a.worker_bin or build / "worker" / "rtda-worker").resolve())
        for b in (self.rtda, self.server_bin, self.worker_bin):
            if not os.access(b, os.X_OK):
                raise Failure(f"{b}: not found or not executable (build it, or pass the path)")
        import numpy as np
        import zmq
        import rtda_client as rc
        self.np, self.zmq, self.rc = np, zmq, rc
        self.pb = rc.pb
        self.mpiexec = a.mpiexec
        self.env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1",
                        OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMP_NUM_THREADS="1",
                        OMPI_MCA_rmaps_base_oversubscribe="1")


class Service:
    """One data_dir with its configuration and processes (ipc:// endpoints in `tmp`)."""

    def __init__(self, t, tmp, name):
        self.t = t
        self.tmp = Path(tmp)
        self.name = name
        self.ep = {k: f"ipc://{self.tmp}/{name}-{k}.sock"
                   for k in ("ingest", "publish", "control", "workers")}
        self.data_dir = self.tmp / f"{name}-data"
        self.cfg = self.tmp / f"{name}.toml"
        self.server_log = self.tmp / f"{name}-server.log"
        self.worker_log = self.tmp / f"{name}-worker.log"
        self.server = None
        self.workers = []  # every worker group started
        self.worker = None

    def write_config(self, sections):
        s = {k: dict(v) for k, v in sections.items()}
        s.setdefault("server", {}).update(
            {"ingest": self.ep["ingest"], "publish": self.ep["publish"],
             "control": self.ep["control"], "workers": self.ep["workers"],
             "data_dir": str(self.data_dir)})
        write_toml(self.cfg, s, f"written by {Path(sys.argv[0]).name} ({self.name})")

    def start_server(self, timeout=120.0):
        """Starts rtda-server; returns (seconds from exec until STATUS answered, Status)."""
        t0 = time.monotonic()
        self.server = subprocess.Popen([self.t.server_bin, "--config", str(self.cfg)],
                                       env=self.t.env, stdout=open(self.server_log, "a"),
                                       stderr=subprocess.STDOUT, start_new_session=True,
                                       cwd=self.tmp)
        st = self.first_status(t0 + timeout)
        return time.monotonic() - t0, st

    def first_status(self, deadline):
        """One DEALER that reconnects every 5 ms; the STATUS request is queued until the
        server's control endpoint exists and answered when its loop runs."""
        zmq, pb = self.t.zmq, self.t.pb
        ctx = zmq.Context.instance()
        s = ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.RECONNECT_IVL, 5)
        s.connect(self.ep["control"])
        req = pb.ControlRequest(version=pb.PROTOCOL_VERSION_1, command=pb.COMMAND_STATUS)
        payload = req.SerializeToString()
        try:
            next_send = 0.0
            while time.monotonic() < deadline:
                if self.server.poll() is not None:
                    raise Failure(f"{self.name}: rtda-server exited {self.server.returncode} at "
                                  f"start:\n{tail(self.server_log)}")
                now = time.monotonic()
                if now >= next_send:
                    s.send_multipart([b"", payload])
                    next_send = now + 5.0
                if s.poll(2) == 0:
                    continue
                reply = pb.ControlReply()
                reply.ParseFromString(s.recv_multipart()[-1])
                if reply.ok:
                    return reply.status
            raise Failure(f"{self.name}: rtda-server did not answer STATUS in time:\n"
                          f"{tail(self.server_log)}")
        finally:
            s.close(0)

    def start_worker(self, ranks=1, extra=()):
        self.worker = subprocess.Popen(
            [self.t.mpiexec, "-n", str(ranks), "--oversubscribe", self.t.worker_bin, "--server",
             self.ep["workers"], *extra], env=self.t.env, stdout=open(self.worker_log, "a"),
            stderr=subprocess.STDOUT, start_new_session=True, cwd=self.tmp)
        self.workers.append(self.worker)
        return self.worker

    def status(self, timeout=5.0):
        return self.t.rc.status(self.ep["control"], timeout_s=timeout)

    def counters(self, st=None):
        return self.t.rc.counters(st if st is not None else self.status())

    def wait_connected(self, timeout=60.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.worker is not None and self.worker.poll() is not None:
                raise Failure(f"{self.name}: worker group exited {self.worker.returncode}:\n"
                              f"{tail(self.worker_log)}")
            try:
                if self.status(2.0).workers.connected:
                    return
            except TimeoutError:
                pass
            time.sleep(0.1)
        raise Failure(f"{self.name}: no worker group connected within {timeout:g} s")

    def shutdown(self, timeout=60.0):
        """COMMAND_SHUTDOWN; waits for the server (and the worker group) to exit."""
        reply = self.t.rc.control(self.ep["control"], self.t.pb.COMMAND_SHUTDOWN, timeout_s=10.0)
        if not reply.ok:
            raise Failure(f"{self.name}: shutdown refused: {reply.error}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.server.poll() is None:
            time.sleep(0.05)
        if self.server.poll() is None:
            raise Failure(f"{self.name}: rtda-server still running {timeout:g} s after shutdown")
        rc = self.server.returncode
        while (time.monotonic() < deadline and self.worker is not None
               and self.worker.poll() is None):
            time.sleep(0.05)
        stop_process(self.worker)
        self.worker = None
        return rc

    def cleanup(self):
        stop_process(self.server)
        for w in self.workers:
            stop_process(w)


def tail(path, n=30):
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return f"({path}: not readable)"


def run_cli(t, args, cwd, timeout):
    r = subprocess.run([t.rtda] + [str(a) for a in args], env=t.env, capture_output=True,
                       text=True, timeout=timeout, cwd=cwd)
    if r.returncode != 0:
        raise Failure(f"rtda {' '.join(map(str, args))} exited {r.returncode}:\n"
                      f"{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    return r


def science_config(tmp, states, spinup_days=0.5, members=4, threads=1, t0=0.0):
    return {
        "model": {"preset": "N32", "fft_planning": "estimate", "fft_wisdom_file": "",
                  "threads": threads},
        "nature": {"seed": 42, "spinup_days": spinup_days, "states": states,
                   "interval_hours": 12.0},
        "ensemble": {"members": members},
        "experiment": {"observations": "linear", "nature_file": str(Path(tmp) / "nature.h5"),
                       "cycles": max(1, states - 1), "statistics_from_cycle": 0,
                       "cycle_hours": 12.0},
        "server": {"filter": "letkf", "log_sync": "always", "heartbeat_seconds": 0.5,
                   "worker_timeout_seconds": 10.0},
        "window": {"t0_seconds": float(t0), "late_policy": "next", "deadline_seconds": 30.0,
                   "grace_seconds": 2.0},
    }


def make_data(t, tmp, windows, log=print):
    """Nature run with `windows` + 1 states and its "linear" observations in tmp; returns
    (obs path, first cycle time, observations per window)."""
    import h5py
    cfg = Path(tmp) / "data.toml"
    write_toml(cfg, science_config(tmp, windows + 1), "data")
    t1 = time.monotonic()
    run_cli(t, ["nature", "--config", cfg, "--out", Path(tmp) / "nature.h5"], tmp, 1800)
    t2 = time.monotonic()
    obs = Path(tmp) / "obs.h5"
    run_cli(t, ["observe", "--config", cfg, "--nature", Path(tmp) / "nature.h5",
                "--experiment", "linear", "--out", obs], tmp, 1800)
    t3 = time.monotonic()
    with h5py.File(obs, "r") as f:
        ct = f["cycle_time"][...]
        n = f["time"].shape[0]
    per = n // len(ct)
    log(f"data: nature run of {windows + 1} states {t2 - t1:.1f} s, {n} observations in "
        f"{len(ct)} windows ({per} per window) {t3 - t2:.1f} s, {obs.stat().st_size / 1e6:.0f} MB")
    return obs, float(ct[0]), per


def recovered_batches(log_path):
    """The newest "recovered: N batches" number of a server log."""
    n = None
    for line in Path(log_path).read_text(errors="replace").splitlines():
        m = re.search(r"recovered: (\d+) batches", line)
        if m:
            n = int(m.group(1))
    return n


def window_rows(np, obs):
    """For each window of the file, the indices of its observations (file order)."""
    win = obs.window_index()
    order = np.argsort(win, kind="stable")
    bounds = np.searchsorted(win[order], np.arange(len(obs.cycle_time) + 1))
    return [order[bounds[k]:bounds[k + 1]] for k in range(len(obs.cycle_time))]


def make_window(pb, np, obs, rows, c, source, seq):
    """The one batch of window c (columns form, with the end-of-window marker): window
    c % len(rows) of the file, its times shifted by whole laps of the file and its ids offset
    by lap * 2**32, so a short file feeds an endless stream of windows."""
    lap, base = divmod(c, len(rows))
    idx = rows[base]
    dt = float(obs.cycle_time[1] - obs.cycle_time[0]) if len(obs.cycle_time) > 1 else 0.0
    shift = lap * len(rows) * dt
    b = pb.ObservationBatch(version=pb.PROTOCOL_VERSION_1, source=source, seq=seq)
    cols = b.columns
    cols.id.extend((obs.id[idx].astype(np.uint64) + np.uint64(lap) * np.uint64(2**32)).tolist())
    cols.time_seconds.extend((obs.time[idx] + shift).tolist())
    cols.level.extend(obs.level[idx].tolist())
    cols.x_m.extend(obs.x[idx].tolist())
    cols.y_m.extend(obs.y[idx].tolist())
    cols.value.extend(obs.value[idx].tolist())
    cols.error_sd.extend(obs.error_sd[idx].tolist())
    cols.op.extend(obs.operator[idx].tolist())
    b.end_of_window_seconds = float(obs.cycle_time[base] + shift)
    return b


# ---------------------------------------------------------------------------------------------
# The benchmark


def feed(t, svc, obs, windows, source="bench", timeout=1800):
    t1 = time.monotonic()
    r = run_cli(t, ["feed", "--obs", obs, "--server", svc.ep["ingest"], "--cycles", windows,
                    "--source", source, "--batch", 10000], svc.tmp, timeout)
    return time.monotonic() - t1, r.stdout.strip()


def feed_paced(t, svc, obs, rows, windows, ahead, source="bench", timeout=1800):
    """Feeds windows 0..windows-1 as a real-time feeder would: window c is sent once cycle
    c - 1 - ahead is published (so the group is never more than `ahead` windows behind and
    batches arrive between checkpoints, as in service). Returns (seconds, accepted)."""
    rc, pb, np = t.rc, t.pb, t.np
    t1 = time.monotonic()
    deadline = t1 + timeout
    published = -1
    accepted = 0
    sub = rc.Subscriber(svc.ep["publish"], ["rtda.summary"])
    try:
        time.sleep(0.3)
        with rc.Feeder(svc.ep["ingest"], timeout_s=2.0, tries=10) as f:
            for c in range(windows):
                last_poll = time.monotonic()
                while c > published + 1 + ahead:
                    if time.monotonic() > deadline:
                        raise Failure(f"{svc.name}: paced feed past {timeout:g} s at window {c}")
                    m = sub.recv(0.2)
                    if m is not None:
                        published = max(published, m[1].cycle)
                    if m is None or time.monotonic() - last_poll > 2.0:
                        published = max(published, svc.status().last_cycle)
                        last_poll = time.monotonic()
                        if svc.worker is not None and svc.worker.poll() is not None:
                            raise Failure(f"{svc.name}: worker group exited "
                                          f"{svc.worker.returncode}:\n{tail(svc.worker_log)}")
                ack = f.send(make_window(pb, np, obs, rows, c, source, c + 1))
                if ack.status != pb.ACK_ACCEPTED or ack.rejected or ack.late:
                    raise Failure(f"{svc.name}: window {c}: {rc.ack_status_name(ack.status)} "
                                  f"{ack.error!r}")
                accepted += ack.accepted
    finally:
        sub.close()
    return time.monotonic() - t1, accepted


def measure_restart(t, svc, repeats):
    """Restarts the server `repeats` times (clean shutdown in between); returns the rows of
    the fastest and the measurements of each."""
    runs = []
    for i in range(repeats):
        secs, st = svc.start_server()
        rss, hwm = proc_status(svc.server.pid)
        replayed = recovered_batches(svc.server_log)
        c = svc.counters(st)
        runs.append({"restart_s": secs, "rss": rss, "hwm": hwm, "log_bytes": st.log_bytes,
                     "segments": st.log_segments, "replayed": replayed,
                     "accepted": c.get("observations_accepted", 0),
                     "last_cycle": st.last_cycle, "closed_waiting": st.closed_windows_waiting})
        svc.shutdown()
    return runs


def run_situation(t, a, tmp, obs_path, obs, rows, t0, per, history, situation, log):
    windows = math.ceil(history / per)
    svc = Service(t, tmp, f"{situation}-{history}")
    base = science_config(tmp, windows + 1, t0=t0)
    if situation.startswith("compacted"):
        base["server"].update({"checkpoint_every": 1, "checkpoint_keep": 2,
                               "archive_keep_cycles": a.archive_keep,
                               "behind_policy": "queue"})
    svc.write_config(base)
    out = {"history": windows * per, "situation": situation, "windows": windows}
    try:
        svc.start_server()
        if situation.startswith("compacted"):
            svc.start_worker(1)
            svc.wait_connected()
        if situation == "compacted":
            fed_s, n = feed_paced(t, svc, obs, rows, windows, a.ahead)
            line = f"paced (at most {a.ahead + 1} windows ahead of the last published), {n} accepted"
        else:
            fed_s, line = feed(t, svc, obs_path, windows)
        log(f"  {situation} H={windows * per}: fed {windows} windows in {fed_s:.1f} s: {line}")
        acc = svc.counters().get("observations_accepted", 0)
        if acc != windows * per:
            raise Failure(f"{svc.name}: observations_accepted {acc}, fed {windows * per}")
        if situation.startswith("compacted"):
            t1 = time.monotonic()
            deadline = t1 + a.cycle_budget
            last = -1
            while time.monotonic() < deadline:
                st = svc.status()
                last = st.last_cycle
                if last >= windows - 1 and st.newest_checkpoint_cycle >= windows - 1:
                    break
                if svc.worker.poll() is not None:
                    raise Failure(f"{svc.name}: worker group exited {svc.worker.returncode}:\n"
                                  f"{tail(svc.worker_log)}")
                time.sleep(0.5)
            else:
                raise Failure(f"{svc.name}: cycle {last} of {windows - 1} published after "
                              f"{a.cycle_budget:g} s (raise --cycle-budget)")
            cyc_s = time.monotonic() - t1 + fed_s
            out["cycles_s"] = cyc_s
            log(f"  {situation}: {windows} cycles published and checkpointed "
                f"{cyc_s:.1f} s after the feed began ({cyc_s / windows * 1000:.1f} ms/cycle)")
        st = svc.status()
        out["before"] = {"log_bytes": st.log_bytes, "segments": st.log_segments,
                         "rss_hwm": proc_status(svc.server.pid)}
        rc = svc.shutdown()
        if rc != 0:
            raise Failure(f"{svc.name}: rtda-server exited {rc} on shutdown:\n"
                          f"{tail(svc.server_log)}")
        runs = measure_restart(t, svc, a.repeats)
        for r in runs:
            if r["accepted"] != windows * per:
                raise Failure(f"{svc.name}: after the restart observations_accepted "
                              f"{r['accepted']}, fed {windows * per}")
        out["runs"] = runs
        out["data_bytes"] = dir_bytes(svc.data_dir)
        return out
    finally:
        svc.cleanup()
        if not a.keep:
            shutil.rmtree(svc.data_dir, ignore_errors=True)


def table(results):
    rows = ["| history (obs) | windows | situation | restart s | RSS MiB | HWM MiB | log MB "
            "| segments | batches replayed |",
            "|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        runs = r["runs"]
        secs = sorted(x["restart_s"] for x in runs)
        best = min(runs, key=lambda x: x["restart_s"])
        srange = (f"{secs[0]:.3f}" if len(secs) == 1 or secs[-1] - secs[0] < 0.0005
                  else f"{secs[0]:.3f}–{secs[-1]:.3f}")
        rows.append(f"| {r['history'] / 1e6:.2f} M | {r['windows']} | {r['situation']} | "
                    f"{srange} | {best['rss']:.1f} | {max(x['hwm'] for x in runs):.1f} | "
                    f"{best['log_bytes'] / 1e6:.3f} | {best['segments']} | {best['replayed']} |")
    return "\n".join(rows)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=str(ROOT / "build"), help="build directory")
    ap.add_argument("--rtda"), ap.add_argument("--server-bin"), ap.add_argument("--worker-bin")
    ap.add_argument("--mpiexec", default="mpiexec")
    ap.add_argument("--histories", default="1e6,1e7",
                    help="observations of history, comma-separated (rounded up to windows)")
    ap.add_argument("--situations", default="uncompacted,compacted",
                    help="uncompacted (no worker group, rtda feed), compacted (worker group, "
                    "paced feed), compacted-burst (worker group, rtda feed all at once)")
    ap.add_argument("--ahead", type=int, default=1,
                    help="compacted: windows sent beyond the next cycle to publish")
    ap.add_argument("--repeats", type=int, default=2, help="restarts measured per case")
    ap.add_argument("--archive-keep", type=int, default=10,
                    help="server.archive_keep_cycles of the compacted runs")
    ap.add_argument("--cycle-budget", type=float, default=900.0,
                    help="seconds the compacted runs may take to publish every cycle")
    ap.add_argument("--time-limit", type=float, default=1800.0, help="seconds for everything")
    ap.add_argument("--work-dir", help="where the temporary directory goes (default $TMPDIR)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    a = ap.parse_args(argv)

    def on_alarm(*_):
        raise TimeLimit(f"--time-limit {a.time_limit:g} s reached")

    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(int(a.time_limit))
    histories = [int(float(h)) for h in a.histories.split(",")]
    situations = a.situations.split(",")
    tmp = Path(tempfile.mkdtemp(prefix="rtda-restart-", dir=a.work_dir))

    def log(m):
        print(m, flush=True)

    try:
        t = Tools(a)
        log(f"host: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; work dir {tmp}")
        windows = math.ceil(max(histories) / OBS_PER_WINDOW)
        obs_path, t0, per = make_data(t, tmp, windows, log)
        if per != OBS_PER_WINDOW:
            raise Failure(f"{per} observations per window, expected {OBS_PER_WINDOW}")
        obs = rows = None
        if "compacted" in situations:
            obs = t.rc.read_observation_file(str(obs_path))
            rows = window_rows(t.np, obs)
        results = []
        for h in histories:
            for s in situations:
                log(f"== history {h}, {s} (load {os.getloadavg()[0]:.2f})")
                r = run_situation(t, a, tmp, obs_path, obs, rows, t0, per, h, s, log)
                for i, x in enumerate(r["runs"]):
                    log(f"  restart {i + 1}: {x['restart_s']:.3f} s, RSS {x['rss']:.1f} MiB, "
                        f"HWM {x['hwm']:.1f} MiB, log {x['log_bytes']} B in {x['segments']} "
                        f"segments, replayed {x['replayed']} batches, last cycle "
                        f"{x['last_cycle']}, closed waiting {x['closed_waiting']}")
                log(f"  data_dir {r['data_bytes'] / 1e6:.1f} MB")
                results.append(r)
        print()
        print(table(results))
        return 0
    except (Failure, TimeLimit) as e:
        print(f"restart_bench: {e}", file=sys.stderr)
        return 1
    finally:
        signal.alarm(0)
        if a.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
