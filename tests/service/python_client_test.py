#!/usr/bin/python3
"""End-to-end test of the Python client (the installed package rtda_client, client/python)
against the C++ service: the wire contract (proto/rtda.proto) spoken from a second language.

In a temporary directory it makes a short N = 32 nature run and its "linear" observations with
the rtda CLI, starts rtda-server (LETKF, 4 members, ipc:// endpoints) and a one-rank worker
group, then with the Python client only:
  - subscribes to the analyses (protobuf messages, xarray Datasets from the iterator and from
    the asyncio stream), feeds 3 windows (truth included) and checks analyses 0, 1, 2 arrive
    with a finite 2 x 32 x 32 mean and spread, the same in every form;
  - checks status() counts exactly the observations fed;
  - re-sends one batch (same source, seq) and checks ACK_DUPLICATE;
  - sends bytes that are not a protobuf and checks ACK_ERROR, and that status still answers;
  - runs the client's CLI (status --json, watch, feed of a 4th window);
  - checks `rtda status --json` and `python -m rtda_client status --json` print the same bytes;
  - feeds a 5th window from a pandas DataFrame (a bad one is refused before sending);
  - reads the service's archive with open_archive: the published means, bit for bit;
  - sends COMMAND_SHUTDOWN and checks both processes exit within 30 s;
  - starts a CURVE deployment (security.curve = true, keys from `rtda keys`, a worker group
    with its key): feeds, subscribes (the same cycle-0 analysis as the plain server, bit for
    bit) and asks for the status with --server-key/--client-key from Python and from C++;
    other keys and plain sockets get nothing.
The processes are killed in any case; every receive has a timeout and the whole test is
bounded (--time-limit, default 120 s).

  python3 tests/service/python_client_test.py --rtda build/client/rtda \\
      --server-bin build/server/rtda-server --worker-bin build/worker/rtda-worker \\
      --mpiexec mpiexec
"""

import argparse
import asyncio
import json
import math
import re
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


GRID_N = 32
MEMBERS = 4
WINDOWS = 3
BATCH = 700  # 2048 observations per window -> 3 batches per window, the last with the marker


sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Failure, TimeLimit, add_service_arguments, check, log_tail  # noqa: E402


def stop_process(p, name, grace=3.0):
    """Terminates the process group of `p` (started with start_new_session) if still alive."""
    if p is None or p.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            return
        try:
            p.wait(timeout=wait)
            print(f"{name} stopped by {signal.Signals(sig).name}", flush=True)
            return
        except subprocess.TimeoutExpired:
            continue


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_service_arguments(ap, 120.0)
    a = ap.parse_args()

    start = time.monotonic()

    def left():
        return a.time_limit - (time.monotonic() - start)

    # The last resort against a hang anywhere (a receive without a timeout would be a bug).
    def on_alarm(signum, frame):
        raise TimeLimit(f"the test ran past its time limit of {a.time_limit:g} s")
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(int(a.time_limit))

    import numpy as np
    import pandas as pd
    import rtda_client as rc
    pb = rc.pb
    py_cli = [sys.executable, "-m", "rtda_client"]

    rtda = str(Path(a.rtda).resolve())
    server_bin = str(Path(a.server_bin).resolve())
    worker_bin = str(Path(a.worker_bin).resolve())
    for b in (rtda, server_bin, worker_bin):
        if not os.access(b, os.X_OK):
            print(f"FAIL: {b} is not an executable", file=sys.stderr)
            return 1

    tmp = Path(tempfile.mkdtemp(prefix="rtda-pyclient-"))
    ep = {k: f"ipc://{tmp}/{k}.sock" for k in ("ingest", "publish", "control", "workers")}
    nature_h5, obs_h5, cfg_path = tmp / "nature.h5", tmp / "obs.h5", tmp / "cfg.toml"
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMP_NUM_THREADS="2", OMPI_MCA_rmaps_base_oversubscribe="1")
    server = worker = watch_cli = nature = curve_server = curve_worker = None
    server_log, worker_log = tmp / "server.log", tmp / "worker.log"
    ok = False

    def write_config(t0, path=cfg_path, ep=ep, data_dir=tmp / "data", extra=""):
        path.write_text(f"""# written by {Path(__file__).name}
[model]
preset = "N32"
fft_planning = "estimate"
fft_wisdom_file = ""
threads = 2

[nature]
seed = 42
spinup_days = 5.0
states = 24
interval_hours = 12.0

[ensemble]
members = {MEMBERS}

[experiment]
observations = "linear"
nature_file = "{nature_h5}"
cycles = 24
statistics_from_cycle = 0
cycle_hours = 12.0

[server]
ingest = "{ep['ingest']}"
publish = "{ep['publish']}"
control = "{ep['control']}"
workers = "{ep['workers']}"
data_dir = "{data_dir}"
filter = "letkf"
log_sync = "always"
heartbeat_seconds = 0.5
worker_timeout_seconds = 10.0

[window]
t0_seconds = {t0!r}
late_policy = "next"
deadline_seconds = 30.0
grace_seconds = 2.0
{extra}""")

    try:
        # --- data: nature run and observations (rtda nature / rtda observe) -----------------
        write_config(0.0)
        for cmd in ([rtda, "nature", "--config", str(cfg_path), "--out", str(nature_h5)],
                    [rtda, "observe", "--config", str(cfg_path), "--nature", str(nature_h5),
                     "--experiment", "linear", "--out", str(obs_h5)]):
            r = subprocess.run(cmd, env=env, capture_output=True, text=True,
                               timeout=max(5.0, left() - 60))
            if r.returncode != 0:
                raise Failure(f"{' '.join(cmd)} exited {r.returncode}:\n{r.stdout}\n{r.stderr}")
        obs = rc.read_observation_file(str(obs_h5))
        check(obs.grid_n == GRID_N and len(obs.cycle_time) == 24 and len(obs) == 24 * 2 * 32 * 32,
              f"observation file read: {len(obs)} observations, {len(obs.cycle_time)} cycles, "
              f"N = {obs.grid_n}")
        t0 = float(obs.cycle_time[0])
        write_config(t0)  # cycle k analyses the k-th nature state: t0 + k * 12 h
        window = obs.window_index()
        nature = rc.NatureRun(str(nature_h5))
        with __import__("h5py").File(nature_h5, "r") as f:  # f * theta0 / g: K per (m s-1)
            kelvin_per_pv = float(f.attrs["f"]) * float(f.attrs["theta0"]) / float(f.attrs["g"])
            length_m = float(f.attrs["L"])
        per_window = [int((window == c).sum()) for c in range(WINDOWS)]
        fed_total = sum(per_window)

        # --- service ------------------------------------------------------------------------
        server = subprocess.Popen([server_bin, "--config", str(cfg_path)], env=env,
                                  stdout=open(server_log, "w"), stderr=subprocess.STDOUT,
                                  start_new_session=True, cwd=tmp)
        st = None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise Failure(f"rtda-server exited {server.returncode} at start")
            try:
                st = rc.status(ep["control"], timeout_s=1.0)
                break
            except TimeoutError:
                continue
        check(st is not None, f"rtda-server answers status (state {st.state if st else '-'})")

        worker = subprocess.Popen([a.mpiexec, "-n", "1", "--oversubscribe", worker_bin,
                                   "--server", ep["workers"]], env=env,
                                  stdout=open(worker_log, "w"), stderr=subprocess.STDOUT,
                                  start_new_session=True, cwd=tmp)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if worker.poll() is not None:
                raise Failure(f"the worker group exited {worker.returncode} at start")
            st = rc.status(ep["control"], timeout_s=2.0)
            if st.workers.connected:
                break
            time.sleep(0.2)
        check(st.workers.connected, f"the worker group connected ({st.workers.ranks} rank(s), "
              f"state {st.state})")
        check(rc.latest_analysis(ep["control"]) is None,
              "latest_analysis() is None before the first cycle")

        # --- feed 3 windows and receive 3 analyses --------------------------------------------
        sub = rc.Subscriber(ep["publish"], ["rtda.analysis"])
        watch_cli = subprocess.Popen(
            py_cli + ["watch", "--server", ep["publish"], "--count", str(WINDOWS),
                      "--timeout", "60"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, start_new_session=True)
        # The same analyses as xarray Datasets, from the iterator and from the asyncio stream
        # (each in a thread of its own, bounded by its timeout).
        got_sync, got_async = [], []

        def sync_subscriber():
            for ds in rc.subscribe(ep["publish"], "rtda.analysis", count=WINDOWS,
                                   timeout_s=60.0, length_m=float(length_m)):
                got_sync.append(ds)

        async def async_collect():
            async for ds in rc.subscribe_async(ep["publish"], "rtda.analysis", count=WINDOWS,
                                               timeout_s=60.0):
                got_async.append(ds)

        threads = [threading.Thread(target=sync_subscriber, daemon=True),
                   threading.Thread(target=lambda: asyncio.run(async_collect()), daemon=True)]
        for th in threads:
            th.start()
        time.sleep(1.0)  # let the subscriptions reach the publisher (a PUB drops until then)

        summary = rc.feed_file(str(obs_h5), ep["ingest"], source="pyclient-test", batch=BATCH,
                               first_seq=1, truth=str(nature_h5), cycles=WINDOWS, timeout_s=2.0,
                               tries=10, log=lambda m: print(f"  feed: {m}", flush=True),
                               keep_batches=True)
        print(f"  {summary.line()}", flush=True)
        check(summary.ok and summary.windows == WINDOWS, "every batch was accepted")
        check(summary.accepted == fed_total and summary.rejected == 0 and summary.late == 0,
              f"the server stored all {fed_total} observations ({summary.accepted} accepted, "
              f"{summary.rejected} rejected, {summary.late} late)")

        analyses = {}
        deadline = time.monotonic() + min(60.0, max(5.0, left() - 35))
        while len(analyses) < WINDOWS and time.monotonic() < deadline:
            got = sub.recv(max(0.1, deadline - time.monotonic()))
            if got is None:
                break
            topic, an = got
            if topic == "rtda.analysis":
                analyses[an.cycle] = an
        sub.close()
        if len(analyses) < WINDOWS:
            st = rc.status(ep["control"], timeout_s=2.0)
            raise Failure(f"only cycles {sorted(analyses)} were published; status:\n"
                          f"{rc.status_text(st)}")
        check(sorted(analyses) == list(range(WINDOWS)), f"analyses of cycles {sorted(analyses)}")
        for c, an in sorted(analyses.items()):
            mean = np.asarray(an.mean)
            spread = np.asarray(an.spread)
            print(f"  {rc.analysis_line(an)}", flush=True)
            check(len(mean) == 2 * GRID_N * GRID_N and np.all(np.isfinite(mean)),
                  f"cycle {c}: mean of length {len(mean)}, all finite")
            check(len(spread) == 2 * GRID_N * GRID_N and np.all(np.isfinite(spread))
                  and np.all(spread >= 0), f"cycle {c}: spread finite and >= 0")
            check(an.version == pb.PROTOCOL_VERSION_1 and an.grid_n == GRID_N
                  and an.members == MEMBERS and an.filter == "letkf",
                  f"cycle {c}: version, grid_n {an.grid_n}, members {an.members}, "
                  f"filter {an.filter!r}")
            check(an.valid_time_seconds == obs.cycle_time[c],
                  f"cycle {c}: valid time {an.valid_time_seconds:g} s = cycle_time")
            check(an.lineage.observations_used == per_window[c],
                  f"cycle {c}: {an.lineage.observations_used} observations used")
            # The truth sent with the window marker is what the service compared with: its
            # RMSE (K) equals ours, from the published mean and the nature state.
            rmse = an.diagnostics.get("rmse_analysis", math.nan)
            ours = kelvin_per_pv * float(np.sqrt(np.mean(
                (mean - nature.state_at(obs.cycle_time[c]).ravel()) ** 2)))
            check(math.isfinite(rmse) and abs(rmse - ours) <= 1e-9 * max(1.0, ours),
                  f"cycle {c}: rmse_analysis = {rmse:.6g} K, recomputed {ours:.6g} K")

        for th in threads:
            th.join(timeout=max(1.0, min(20.0, left() - 30)))
        check([int(d.cycle) for d in got_sync] == list(range(WINDOWS))
              and [int(d.cycle) for d in got_async] == list(range(WINDOWS)),
              f"subscribe() and subscribe_async() yielded Datasets of cycles "
              f"{[int(d.cycle) for d in got_sync]} / {[int(d.cycle) for d in got_async]}")
        for ds, da in zip(got_sync, got_async):
            c = int(ds.cycle)
            an = analyses[c]
            check(ds["mean"].dims == ("level", "y", "x") and ds["mean"].shape == (2, 32, 32)
                  and np.array_equal(ds["mean"].values.ravel(), np.asarray(an.mean))
                  and np.array_equal(ds["spread"].values.ravel(), np.asarray(an.spread))
                  and ds.equals(da.assign_coords(x=ds.x, y=ds.y)),
                  f"cycle {c}: the Datasets hold the published mean and spread (level, y, x)")
            check(float(ds["x"][1]) == length_m / GRID_N and float(ds["time"]) ==
                  an.valid_time_seconds and float(ds["rmse_analysis"]) ==
                  an.diagnostics["rmse_analysis"] and ds.attrs["filter"] == "letkf"
                  and ds.attrs["lineage_observations_used"] == per_window[c]
                  and ds.attrs["lineage_config_hash"] == an.lineage.config_hash
                  and ds.attrs["latency_total_seconds"] == an.latency.total_seconds,
                  f"cycle {c}: coordinates, diagnostics and lineage "
                  f"({ds.attrs['lineage_observations_used']} observations, config "
                  f"{ds.attrs['lineage_config_hash']})")

        try:
            out, err = watch_cli.communicate(timeout=max(1.0, min(20.0, left() - 30)))
        except subprocess.TimeoutExpired:
            stop_process(watch_cli, "rtda_client watch")
            out, err = watch_cli.communicate()
        lines = [ln for ln in out.splitlines() if ln.startswith("cycle ")]
        check(watch_cli.returncode == 0 and len(lines) == WINDOWS,
              f"rtda_client watch printed {len(lines)} analyses (exit {watch_cli.returncode})"
              + (f": {err.strip()}" if err.strip() else ""))

        # --- status counts what was fed -------------------------------------------------------
        st = rc.status(ep["control"], timeout_s=5.0)
        counters = rc.counters(st)
        check(counters.get("observations_accepted") == fed_total,
              f"status: observations_accepted = {counters.get('observations_accepted')}, "
              f"fed {fed_total}")
        check(st.last_cycle == WINDOWS - 1, f"status: last_cycle = {st.last_cycle}")

        r = subprocess.run(py_cli + ["status", "--server", ep["control"], "--json"],
                           capture_output=True, text=True, timeout=15)
        js = json.loads(r.stdout) if r.returncode == 0 else {}
        check(r.returncode == 0 and int(js.get("last_cycle", -9)) == WINDOWS - 1,
              f"rtda_client status --json (exit {r.returncode}, state {js.get('state')})"
              + (f": {r.stderr.strip()}" if r.returncode else ""))

        # --- a retry of an already durable batch ------------------------------------------------
        with rc.Feeder(ep["ingest"], timeout_s=2.0, tries=5) as feeder:
            ack = feeder.send(summary.sent[0])
        check(ack.status == pb.ACK_DUPLICATE and ack.seq == summary.sent[0].seq,
              f"re-sent (source, seq) = ({ack.source}, {ack.seq}): "
              f"{rc.ack_status_name(ack.status)}, accepted {ack.accepted}")
        counters = rc.counters(rc.status(ep["control"], timeout_s=5.0))
        check(counters.get("observations_accepted") == fed_total,
              "the duplicate stored nothing new")

        # --- bytes that are not a protobuf ------------------------------------------------------
        garbage = b"\xff" * 12 + b" this is not an ObservationBatch"
        try:
            pb.ObservationBatch().ParseFromString(garbage)
            raise Failure("the garbage payload parses as a protobuf: choose other bytes")
        except Failure:
            raise
        except Exception:  # noqa: BLE001 - the point: it does not parse
            pass
        reply = rc.send_raw(ep["ingest"], [b"", garbage], timeout_s=5.0)
        check(reply is not None, "the server answers garbage")
        gack = pb.IngestAck()
        gack.ParseFromString(reply[-1])
        check(gack.status == pb.ACK_ERROR,
              f"garbage: {rc.ack_status_name(gack.status)} ({gack.error!r})")
        st = rc.status(ep["control"], timeout_s=5.0)
        check(server.poll() is None and st.state != "",
              f"the server still answers status after garbage (state {st.state})")

        # --- the client's CLI feeds the next window ------------------------------------------
        with rc.Subscriber(ep["publish"], ["rtda.summary"]) as sub4:
            time.sleep(0.5)
            r = subprocess.run(py_cli + ["feed", "--obs", str(obs_h5),
                                         "--server", ep["ingest"], "--source", "pyclient-cli",
                                         "--batch", "1000", "--first-cycle", str(WINDOWS),
                                         "--cycles",
                                         "1", "--truth", str(nature_h5), "--quiet"],
                               capture_output=True, text=True, timeout=30)
            n4 = int((window == WINDOWS).sum())
            check(r.returncode == 0 and f"{n4} accepted" in r.stdout,
                  f"rtda_client feed of window {WINDOWS}: {r.stdout.strip()}"
                  + (f" / {r.stderr.strip()}" if r.returncode else ""))
            an = None
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                got = sub4.recv(max(0.1, deadline - time.monotonic()))
                if got is None or got[1].cycle == WINDOWS:
                    an = got and got[1]
                    break
            check(an is not None and an.lineage.observations_used == n4,
                  f"cycle {WINDOWS} published from the CLI's feed"
                  + (f": {rc.analysis_line(an)}" if an else ""))

        # --- one status schema: the C++ and the Python CLI print the same bytes ----------------
        def masked(text):
            """Without what the requests themselves move: the two clocks, and the counts of
            CURVE handshakes (each request is one)."""
            text = re.sub(r'"(uptime_seconds|last_heartbeat_age_seconds)": [^,\n]+',
                          r'"\1": <t>', text)
            return re.sub(r'("name": "curve_handshakes_\w+",\s+"value": )"\d+"', r"\1<n>",
                          text)
        def same_status_json(control_ep, cpp_keys=(), py_keys=()):
            """(same, attempts, C++ output): both CLIs' status --json, a few tries in case a
            counter moved between the two requests."""
            for attempt in range(1, 6):
                rc_cpp = subprocess.run([rtda, "status", "--server", control_ep, "--json"]
                                        + list(cpp_keys), capture_output=True, text=True,
                                        timeout=15, env=env)
                rc_py = subprocess.run(py_cli + ["status", "--server", control_ep, "--json"]
                                       + list(py_keys), capture_output=True, text=True,
                                       timeout=15)
                if rc_cpp.returncode or rc_py.returncode:
                    raise Failure(f"status --json: rtda exit {rc_cpp.returncode} "
                                  f"({rc_cpp.stderr.strip()}), python exit {rc_py.returncode} "
                                  f"({rc_py.stderr.strip()})")
                if masked(rc_cpp.stdout) == masked(rc_py.stdout):
                    return True, attempt, rc_cpp.stdout
            import difflib
            print("\n".join(difflib.unified_diff(rc_cpp.stdout.splitlines(),
                                                  rc_py.stdout.splitlines(), "rtda", "python",
                                                  lineterm="")), file=sys.stderr)
            return False, attempt, rc_cpp.stdout

        same, attempt, text = same_status_json(ep["control"])
        doc = json.loads(text)
        check(same and len(text.splitlines()) > 30 and "counters" in doc
              and "sources" in doc and "workers" in doc,
              f"rtda status --json and python -m rtda_client status --json print the same "
              f"{len(text.splitlines())} lines (clocks masked; attempt {attempt})")

        # --- a window from a pandas DataFrame ------------------------------------------------
        c5 = WINDOWS + 1
        idx = np.nonzero(window == c5)[0]
        op_names = np.array(["linear_K", "arctan", "identity"])
        df = pd.DataFrame({"time": obs.time[idx], "level": obs.level[idx], "x": obs.x[idx],
                           "y": obs.y[idx], "value": obs.value[idx],
                           "error_sd": obs.error_sd[idx], "operator": op_names[obs.operator[idx]],
                           "id": obs.id[idx]})
        before = rc.counters(rc.status(ep["control"], timeout_s=5.0))
        bad = df.copy()
        bad.loc[bad.index[17], "error_sd"] = -0.5
        try:
            rc.feed_table(bad, ep["ingest"], source="pyclient-df", first_seq=1)
            raise Failure("a DataFrame with error_sd = -0.5 was sent")
        except rc.ObservationTableError as e:
            check("'error_sd'" in str(e) and "row 17" in str(e) and "-0.5" in str(e),
                  f"a bad DataFrame is refused before sending: {e}")
        check(rc.counters(rc.status(ep["control"], timeout_s=5.0)).get(
              "batches_accepted") == before.get("batches_accepted"), "and nothing was sent")
        with rc.Subscriber(ep["publish"], ["rtda.summary"]) as sub5:
            time.sleep(0.5)
            t5 = float(obs.cycle_time[c5])
            summ = rc.feed_table(df, ep["ingest"], source="pyclient-df", first_seq=1,
                                 batch=900, end_of_window=t5, truth_q=nature.state_at(t5),
                                 domain_m=length_m)
            check(summ.ok and summ.batches == 3 and summ.accepted == len(df),
                  f"feed_table: {summ.line()}")
            an = None
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                got = sub5.recv(max(0.1, deadline - time.monotonic()))
                if got is None or got[1].cycle == c5:
                    an = got and got[1]
                    break
            check(an is not None and an.lineage.observations_used == len(df)
                  and math.isfinite(an.diagnostics.get("rmse_analysis", math.nan)),
                  f"cycle {c5} published from the DataFrame"
                  + (f": {rc.analysis_line(an)}" if an else ""))

        # --- the service's archive as one Dataset --------------------------------------------
        arch = rc.open_archive(tmp / "data" / "analyses")
        check(arch["cycle"].values.tolist() == list(range(c5 + 1))
              and arch["mean"].dims == ("cycle", "level", "y", "x"),
              f"open_archive(data_dir/analyses): cycles {arch['cycle'].values.tolist()}, "
              f"mean {arch['mean'].dims}")
        check(all(np.array_equal(arch["mean"].sel(cycle=c).values.ravel(),
                                 np.asarray(analyses[c].mean)) and
                  float(arch["rmse_analysis"].sel(cycle=c)) ==
                  analyses[c].diagnostics["rmse_analysis"] for c in range(WINDOWS)),
              "the archive holds the published means and diagnostics bit for bit")
        latest = rc.latest_analysis(ep["control"], length_m=length_m)
        check(latest is not None and int(latest.cycle) == c5 and np.array_equal(
              latest["mean"].values, arch["mean"].sel(cycle=c5).values),
              f"latest_analysis() is cycle {c5}, as archived")

        # --- shutdown -------------------------------------------------------------------------
        reply = rc.control(ep["control"], pb.COMMAND_SHUTDOWN, timeout_s=5.0)
        check(reply.ok, f"COMMAND_SHUTDOWN accepted ({reply.message or reply.error})")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (server.poll() is None or worker.poll() is None):
            time.sleep(0.1)
        check(server.poll() is not None,
              f"rtda-server exited after shutdown (status {server.returncode})")
        check(worker.poll() is not None,
              f"the worker group exited after shutdown (status {worker.returncode})")
        check(server.returncode == 0 and worker.returncode == 0,
              f"clean exits (server {server.returncode}, workers {worker.returncode})")

        # --- CURVE: keys from rtda keys, from Python and from C++ ------------------------------
        keys = tmp / "keys"  # made by rtda keys
        for who in ("server", "client", "other"):
            r = subprocess.run([rtda, "keys", "--out", str(keys / who)], capture_output=True,
                               text=True, timeout=15, env=env)
            if r.returncode != 0:
                raise Failure(f"rtda keys --out {keys / who}: exit {r.returncode} {r.stderr}")
        cep = {k: f"ipc://{tmp}/curve-{k}.sock" for k in ep}
        curve_cfg = tmp / "curve.toml"
        write_config(t0, curve_cfg, cep, tmp / "curve-data", f"""
[security]
curve = true
server_key = "{keys / 'server.key_secret'}"
feeder_keys = "{keys / 'client.key'}"
control_keys = "{keys / 'client.key'}"
worker_keys = "{keys / 'client.key'}"
""")
        curve_server = subprocess.Popen([server_bin, "--config", str(curve_cfg)], env=env,
                                        stdout=open(tmp / "curve-server.log", "w"),
                                        stderr=subprocess.STDOUT, start_new_session=True,
                                        cwd=tmp)
        curve = rc.CurveKeys.from_files(keys / "server.key", keys / "client.key_secret")
        st = None
        deadline = time.monotonic() + 20
        while st is None and time.monotonic() < deadline:
            if curve_server.poll() is not None:
                raise Failure(f"the CURVE rtda-server exited {curve_server.returncode}:\n"
                              f"{log_tail(tmp / 'curve-server.log')}")
            try:
                st = rc.status(cep["control"], timeout_s=1.0, curve=curve)
            except TimeoutError:
                continue
        check(st is not None, "CURVE: status from Python with the client's key pair")
        key_args = ["--server-key", str(keys / "server.key")]
        curve_worker = subprocess.Popen(
            [a.mpiexec, "-n", "1", "--oversubscribe", worker_bin, "--server", cep["workers"]]
            + key_args + ["--key", str(keys / "client.key_secret")], env=env,
            stdout=open(tmp / "curve-worker.log", "w"), stderr=subprocess.STDOUT,
            start_new_session=True, cwd=tmp)
        deadline = time.monotonic() + 30
        while not st.workers.connected and time.monotonic() < deadline:
            if curve_worker.poll() is not None:
                raise Failure(f"the CURVE worker group exited {curve_worker.returncode}:\n"
                              f"{log_tail(tmp / 'curve-worker.log')}")
            time.sleep(0.2)
            st = rc.status(cep["control"], timeout_s=2.0, curve=curve)
        check(st.workers.connected, "CURVE: the worker group joined with its key")
        got_curve = []

        def curve_subscriber():
            for ds in rc.subscribe(cep["publish"], "rtda.analysis", count=1, timeout_s=30.0,
                                   curve=curve):
                got_curve.append(ds)
        th = threading.Thread(target=curve_subscriber, daemon=True)
        th.start()
        time.sleep(1.0)  # the CURVE handshake and the subscription reach the publisher
        r = subprocess.run(py_cli + ["feed", "--obs", str(obs_h5), "--server", cep["ingest"],
                                     "--source", "curve-py", "--cycles", "1", "--quiet",
                                     "--truth", str(nature_h5)]
                           + key_args + ["--client-key", str(keys / "client.key_secret")],
                           capture_output=True, text=True, timeout=30)
        check(r.returncode == 0 and f"{per_window[0]} accepted" in r.stdout,
              f"CURVE: python -m rtda_client feed --server-key --client-key: "
              f"{r.stdout.strip()}" + (f" / {r.stderr.strip()}" if r.returncode else ""))
        th.join(timeout=max(1.0, min(30.0, left() - 20)))
        # The same science configuration and observations: the same analysis, bit for bit.
        check(len(got_curve) == 1 and int(got_curve[0].cycle) == 0 and np.array_equal(
              got_curve[0]["mean"].values.ravel(), np.asarray(analyses[0].mean)),
              "CURVE: subscribe(curve=...) received cycle 0 as a Dataset, bitwise the plain "
              "server's")
        same, attempt, text = same_status_json(
            cep["control"], key_args + ["--key", str(keys / "client.key_secret")],
            key_args + ["--client-key", str(keys / "client.key_secret")])
        check(same and rc.counters(rc.status(cep["control"], curve=curve)).get(
              "observations_accepted") == per_window[0],
              f"CURVE: rtda status --json --server-key --key and python -m rtda_client status "
              f"--json --server-key --client-key print the same {len(text.splitlines())} lines")
        other = rc.CurveKeys.from_files(keys / "server.key", keys / "other.key_secret")
        for who, sec in (("a key not on the allow-list", other), ("a client without CURVE",
                                                                    None)):
            try:
                rc.status(cep["control"], timeout_s=1.5, curve=sec)
                raise Failure(f"CURVE: {who} got a status")
            except TimeoutError:
                check(True, f"CURVE: {who} gets no answer")
        r = subprocess.run(py_cli + ["shutdown", "--server", cep["control"]] + key_args
                           + ["--client-key", str(keys / "client.key_secret")],
                           capture_output=True, text=True, timeout=15)
        for p in (curve_server, curve_worker):
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        check(r.returncode == 0 and curve_server.returncode == 0
              and curve_worker.returncode == 0,
              f"CURVE: python -m rtda_client shutdown stopped the server and the worker group "
              f"(exits {curve_server.returncode}, {curve_worker.returncode})")
        ok = True
    except (Failure, TimeLimit, TimeoutError, RuntimeError) as e:
        print(f"FAIL: {e}", file=sys.stderr, flush=True)
    finally:
        signal.alarm(0)
        stop_process(watch_cli, "rtda_client watch")
        stop_process(server, "rtda-server")
        stop_process(worker, "the worker group")
        stop_process(curve_server, "the CURVE rtda-server")
        stop_process(curve_worker, "the CURVE worker group")
        if nature is not None:
            nature.close()
        if not ok:
            for name, path in (("rtda-server", server_log), ("worker", worker_log)):
                if path.exists():
                    print(f"--- {name} log (tail) ---\n{log_tail(path)}", file=sys.stderr)
        if a.keep or not ok and os.environ.get("RTDA_KEEP_TMP"):
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"{'PASS' if ok else 'FAIL'} ({time.monotonic() - start:.1f} s)", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
