#!/usr/bin/python3
"""A bounded soak of the real-time service: rtda-server + a 2-rank worker group under a
feeder that keeps the group busy, with kill -9 of the server (and now and then of the worker
group) every --restart-every seconds.

  server    rtda-server on ipc:// endpoints in a temporary directory (N32, 4 members, letkf,
            log_sync always, checkpoint_every 1, archive_keep_cycles --archive-keep);
  workers   mpiexec -n 2 --oversubscribe rtda-worker; after a server kill it rejoins by
            itself; after its own kill -9 a new group is started at once;
  feeder    one source, one batch per window (2048 "linear" observations + the end-of-window
            marker), sent as soon as the window --ahead windows before it is published (or
            at a fixed rate with --windows-per-second); each batch is resent with the same
            (source, seq) until it is acked. The observation file holds --file-windows
            windows; later windows reuse them shifted in time by whole laps (ids made unique);
  subscriber  rtda.summary: the cycle and Analysis.latency.total_seconds of each analysis;
  sampler   every --sample-every s: server VmRSS/VmHWM, data_dir/log, analyses and checkpoints
            sizes, Status (last cycle, counters, latency p50/p99).

Writes soak.csv (samples), analyses.csv (cycle, latency), events.csv (kills and restarts)
to --out-dir (default a temporary directory, printed) and the plot docs/plots/soak/soak.png
(--plot). Checks at the end, exit 1 when one fails:
  - every acked observation is accounted for: Status observations_accepted (and the source's
    SourceStatus.observations_accepted) equal the sum of the final acks' accepted counts;
  - no cycle is missing: the last fed window is published, and data_dir/analyses holds exactly
    the newest archive_keep_cycles cycles (every cycle when 0);
  - bounded: after the warm-up, max RSS and max log size of the last third <= --bound (1.5)
    times those of the first third;
  - no process died that the soak did not kill, and no worker errors / paused state.

  build/python-venv/bin/python bench/soak.py --build build --minutes 30 --restart-every 60 --seed 1
"""

import argparse
import csv
import math
import os
import random
import re
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from restart_bench import (Failure, Service, TimeLimit, Tools, dir_bytes,  # noqa: E402
                           kill9_session, make_data, make_window, proc_status, science_config,
                           tail, window_rows)


class Shared:
    """State the threads share (under `lock`)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.published = -1          # newest cycle seen (subscriber or status)
        self.analyses = []           # (wall s since start, cycle, latency s, degraded)
        self.acked_obs = 0           # sum of final acks' accepted
        self.fed_windows = 0         # windows whose batch got its final ack
        self.acks = {"ACK_ACCEPTED": 0, "ACK_DUPLICATE": 0}
        self.bad_acks = []
        self.retries = 0
        self.stop = threading.Event()
        self.server_up = threading.Event()
        self.errors = []


def feeder_thread(t, svc, sh, a, obs, t_start):
    rc, pb, np = t.rc, t.pb, t.np
    rows = window_rows(np, obs)
    try:
        with rc.Feeder(svc.ep["ingest"], timeout_s=1.0, tries=10**6) as f:
            c = 0
            next_due = time.monotonic()
            while not sh.stop.is_set():
                if a.windows_per_second > 0:
                    wait = next_due - time.monotonic()
                    if wait > 0:
                        sh.stop.wait(wait)
                        continue
                    next_due += 1.0 / a.windows_per_second
                else:
                    with sh.lock:
                        pub = sh.published
                    if c > pub + a.ahead:
                        sh.stop.wait(0.005)
                        continue
                b = make_window(pb, np, obs, rows, c, "soak", c + 1)
                ack = send_until_acked(f, b, sh)
                if ack is None:
                    return  # stopping
                name = rc.ack_status_name(ack.status)
                with sh.lock:
                    sh.acks[name] = sh.acks.get(name, 0) + 1
                    if ack.status in (pb.ACK_ACCEPTED, pb.ACK_DUPLICATE):
                        sh.acked_obs += ack.accepted
                        sh.fed_windows = c + 1
                    else:
                        sh.bad_acks.append((c, name, ack.error))
                    if ack.status == pb.ACK_ACCEPTED and (ack.rejected or ack.late):
                        sh.bad_acks.append((c, f"rejected {ack.rejected} late {ack.late}",
                                            ack.error))
                c += 1
    except Exception as e:  # noqa: BLE001 - reported at the end
        with sh.lock:
            sh.errors.append(f"feeder: {type(e).__name__}: {e}")
        sh.stop.set()


def send_until_acked(f, batch, sh):
    """Feeder.send, retried (same seq) until an ack arrives or the soak stops."""
    while not sh.stop.is_set():
        try:
            f.tries = 5
            ack = f.send(batch)
            with sh.lock:
                sh.retries = f.retries
            return ack
        except TimeoutError:
            continue
    return None


def subscriber_thread(t, svc, sh, t_start):
    try:
        sub = t.rc.Subscriber(svc.ep["publish"], ["rtda.summary"])
        try:
            while not sh.stop.is_set():
                m = sub.recv(0.2)
                if m is None:
                    continue
                topic, an = m
                if topic != "rtda.summary":
                    continue
                with sh.lock:
                    sh.analyses.append((time.monotonic() - t_start, an.cycle,
                                        an.latency.total_seconds, bool(an.degraded)))
                    sh.published = max(sh.published, an.cycle)
        finally:
            sub.close()
    except Exception as e:  # noqa: BLE001
        with sh.lock:
            sh.errors.append(f"subscriber: {type(e).__name__}: {e}")


SAMPLE_FIELDS = ["t_s", "server_pid", "rss_mib", "hwm_mib", "log_mb", "log_segments",
                 "analyses_mb", "analysis_files", "checkpoints_mb", "last_cycle",
                 "observations_accepted", "acked_obs", "fed_windows", "latency_p50_ms",
                 "latency_p99_ms", "recent_latency_max_ms", "state", "workers_connected",
                 "backlog_cycles", "load1"]


def sample(t, svc, sh, t_start, last_n):
    row = {k: "" for k in SAMPLE_FIELDS}
    row["t_s"] = round(time.monotonic() - t_start, 2)
    row["load1"] = round(os.getloadavg()[0], 2)
    log_dir = svc.data_dir / "log"
    an_dir = svc.data_dir / "analyses"
    row["log_mb"] = round(dir_bytes(log_dir) / 1e6, 3)
    row["log_segments"] = len(list(log_dir.glob("segment-*.log"))) if log_dir.exists() else 0
    row["analyses_mb"] = round(dir_bytes(an_dir) / 1e6, 3)
    row["analysis_files"] = len(list(an_dir.glob("analysis-*.h5"))) if an_dir.exists() else 0
    row["checkpoints_mb"] = round(dir_bytes(svc.data_dir / "checkpoints") / 1e6, 3)
    server = svc.server
    if server is not None and server.poll() is None:
        row["server_pid"] = server.pid
        rss, hwm = proc_status(server.pid)
        row["rss_mib"] = "" if rss is None else round(rss, 1)
        row["hwm_mib"] = "" if hwm is None else round(hwm, 1)
        try:
            st = svc.status(1.0)
            c = t.rc.counters(st)
            row.update(last_cycle=st.last_cycle,
                       observations_accepted=c.get("observations_accepted", 0),
                       latency_p50_ms=round(st.latency_p50_seconds * 1e3, 2),
                       latency_p99_ms=round(st.latency_p99_seconds * 1e3, 2),
                       state=st.state, workers_connected=int(st.workers.connected),
                       backlog_cycles=st.backlog_cycles)
            with sh.lock:
                sh.published = max(sh.published, st.last_cycle)
        except (TimeoutError, RuntimeError):
            pass
    with sh.lock:
        row["acked_obs"] = sh.acked_obs
        row["fed_windows"] = sh.fed_windows
        recent = [x[2] for x in sh.analyses[last_n:]]
        n = len(sh.analyses)
    row["recent_latency_max_ms"] = round(max(recent) * 1e3, 2) if recent else ""
    return row, n


def bounded_check(rows, key, warmup_s, bound):
    """(ok, first-third max, last-third max) of column `key` after the warm-up."""
    pts = [(r["t_s"], float(r[key])) for r in rows if r[key] != "" and r["t_s"] >= warmup_s]
    if len(pts) < 6:
        return False, math.nan, math.nan
    t0, t1 = pts[0][0], pts[-1][0]
    third = (t1 - t0) / 3
    first = max(v for ts, v in pts if ts <= t0 + third)
    last = max(v for ts, v in pts if ts >= t1 - third)
    return last <= bound * first, first, last


def plot(rows, analyses, events, path, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(3, 1, figsize=(10, 8.5), sharex=True)
    tm = lambda ts: [x / 60 for x in ts]  # noqa: E731
    r = [x for x in rows if x["rss_mib"] != ""]
    ax[0].plot(tm([x["t_s"] for x in r]), [float(x["rss_mib"]) for x in r], ".-", ms=2, lw=0.8,
               label="VmRSS")
    ax[0].plot(tm([x["t_s"] for x in r]), [float(x["hwm_mib"]) for x in r], lw=0.8, alpha=0.6,
               label="VmHWM (per process)")
    ax[0].set_ylabel("server memory, MiB")
    ax[0].legend(loc="upper left", fontsize=8)
    ax[1].plot(tm([x["t_s"] for x in rows]), [float(x["log_mb"]) for x in rows], lw=0.9,
               label="data_dir/log")
    ax[1].plot(tm([x["t_s"] for x in rows]), [float(x["analyses_mb"]) for x in rows], lw=0.9,
               label="data_dir/analyses")
    ax[1].plot(tm([x["t_s"] for x in rows]), [float(x["checkpoints_mb"]) for x in rows], lw=0.9,
               label="data_dir/checkpoints")
    ax[1].set_ylabel("MB on disk")
    ax[1].legend(loc="upper left", fontsize=8)
    ax[2].semilogy(tm([x[0] for x in analyses]), [max(x[2], 1e-4) * 1e3 for x in analyses],
                   ".", ms=1.5, alpha=0.5)
    ax[2].set_ylabel("analysis latency, ms\n(last obs in -> published)")
    ax[2].set_xlabel("minutes")
    for e in events:
        color = {"server_kill9": "red", "worker_kill9": "blue"}.get(e[1])
        if color:
            for x in ax:
                x.axvline(e[0] / 60, color=color, lw=0.6, alpha=0.5)
    ax[0].set_title(title + "\nred: kill -9 server, blue: kill -9 worker group", fontsize=9)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=str(ROOT / "build"), help="build directory")
    ap.add_argument("--rtda"), ap.add_argument("--server-bin"), ap.add_argument("--worker-bin")
    ap.add_argument("--mpiexec", default="mpiexec")
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--restart-every", type=float, default=60.0,
                    help="mean seconds between kills (each 0.7-1.3x, seeded)")
    ap.add_argument("--worker-kill-fraction", type=float, default=0.25,
                    help="fraction of the kills that hit the worker group instead of the server")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--ahead", type=int, default=1,
                    help="windows sent beyond the newest published cycle")
    ap.add_argument("--windows-per-second", type=float, default=0.0,
                    help="fixed feed rate instead (0 = as fast as the group publishes)")
    ap.add_argument("--file-windows", type=int, default=200,
                    help="windows in the observation file (reused by laps)")
    ap.add_argument("--archive-keep", type=int, default=50, help="server.archive_keep_cycles")
    ap.add_argument("--sample-every", type=float, default=2.0)
    ap.add_argument("--warmup", type=float, default=60.0, help="seconds not judged for growth")
    ap.add_argument("--bound", type=float, default=1.5)
    ap.add_argument("--out-dir", help="where the CSVs go (default: the temporary directory)")
    ap.add_argument("--plot", default=str(ROOT / "docs" / "plots" / "soak" / "soak.png"))
    ap.add_argument("--work-dir", help="parent of the temporary directory")
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args(argv)

    limit = a.minutes * 60 + 300

    def on_alarm(*_):
        raise TimeLimit(f"soak ran past {limit:g} s")

    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(int(limit))
    rng = random.Random(a.seed)
    tmp = Path(tempfile.mkdtemp(prefix="rtda-soak-", dir=a.work_dir))
    out_dir = Path(a.out_dir) if a.out_dir else tmp
    out_dir.mkdir(parents=True, exist_ok=True)
    sh = Shared()
    svc = None
    threads = []
    events = []  # (t_s, kind, detail)
    rows = []
    failures = []

    def log(m):
        print(f"[{time.strftime('%H:%M:%S')}] {m}", flush=True)

    try:
        t = Tools(a)
        log(f"host: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; work dir {tmp}")
        obs_path, t0, per = make_data(t, tmp, a.file_windows, log)
        obs = t.rc.read_observation_file(str(obs_path))
        svc = Service(t, tmp, "soak")
        cfg = science_config(tmp, a.file_windows + 1, t0=t0)
        cfg["server"].update({"checkpoint_every": 1, "checkpoint_keep": 2,
                              "archive_keep_cycles": a.archive_keep,
                              "worker_timeout_seconds": 3.0, "heartbeat_seconds": 0.5})
        cfg["window"]["max_windows_ahead"] = 64
        svc.write_config(cfg)
        secs, _ = svc.start_server()
        log(f"server up in {secs:.3f} s")
        svc.start_worker(a.ranks)
        svc.wait_connected()
        t_start = time.monotonic()
        events.append((0.0, "start", f"server pid {svc.server.pid}"))
        threads = [threading.Thread(target=feeder_thread, args=(t, svc, sh, a, obs, t_start),
                                    daemon=True),
                   threading.Thread(target=subscriber_thread, args=(t, svc, sh, t_start),
                                    daemon=True)]
        for th in threads:
            th.start()
        end = t_start + a.minutes * 60
        next_kill = t_start + a.restart_every * rng.uniform(0.7, 1.3)
        next_sample = t_start
        last_n = 0
        unexpected = []
        while time.monotonic() < end and not sh.stop.is_set():
            now = time.monotonic()
            if now >= next_sample:
                row, last_n = sample(t, svc, sh, t_start, last_n)
                rows.append(row)
                next_sample += a.sample_every
                if len(rows) % 15 == 1:
                    log(f"t={row['t_s']:.0f}s cycle {row['last_cycle']} rss {row['rss_mib']} MiB "
                        f"log {row['log_mb']} MB analyses {row['analysis_files']} files "
                        f"acked {row['acked_obs']} accepted {row['observations_accepted']} "
                        f"lat p50/p99 {row['latency_p50_ms']}/{row['latency_p99_ms']} ms "
                        f"load {row['load1']}")
            # Processes that died without us.
            if svc.server.poll() is not None:
                unexpected.append((now - t_start, "server", svc.server.returncode,
                                   tail(svc.server_log, 15)))
                log(f"UNEXPECTED: rtda-server exited {svc.server.returncode}; restarting")
                events.append((now - t_start, "server_died", str(svc.server.returncode)))
                secs, _ = svc.start_server()
                events.append((time.monotonic() - t_start, "server_restart", f"{secs:.3f}"))
            if svc.worker.poll() is not None:
                unexpected.append((now - t_start, "worker group", svc.worker.returncode,
                                   tail(svc.worker_log, 15)))
                log(f"UNEXPECTED: worker group exited {svc.worker.returncode}; starting another")
                events.append((now - t_start, "worker_died", str(svc.worker.returncode)))
                svc.start_worker(a.ranks)
            if now >= next_kill:
                tk = now - t_start
                if rng.random() < a.worker_kill_fraction:
                    kill9_session(svc.worker)
                    events.append((tk, "worker_kill9", ""))
                    # The server refuses a new group while the old one counts as alive
                    # (server.worker_timeout_seconds since its last heartbeat), and a refused
                    # rtda-worker exits 2: start the new group once the old one is declared lost.
                    lost_by = time.monotonic() + 20
                    while time.monotonic() < lost_by:
                        try:
                            if not svc.status(1.0).workers.connected:
                                break
                        except TimeoutError:
                            pass
                        time.sleep(0.1)
                    svc.start_worker(a.ranks)
                    log(f"t={tk:.0f}s kill -9 worker group; new group started after "
                        f"{time.monotonic() - now:.1f} s (old one declared lost)")
                else:
                    kill9_session(svc.server)
                    events.append((tk, "server_kill9", ""))
                    secs, st = svc.start_server()
                    events.append((time.monotonic() - t_start, "server_restart", f"{secs:.3f}"))
                    log(f"t={tk:.0f}s kill -9 server; restarted in {secs:.3f} s (log "
                        f"{st.log_bytes} B, {st.log_segments} segments, last cycle "
                        f"{st.last_cycle})")
                next_kill = now + a.restart_every * rng.uniform(0.7, 1.3)
            time.sleep(0.05)

        # ---- drain: stop feeding, wait for the last fed window to be published ------------
        sh.stop.set()
        for th in threads:
            th.join(timeout=10)
        with sh.lock:
            fed, acked = sh.fed_windows, sh.acked_obs
        log(f"feeding stopped: {fed} windows acked, {acked} observations")
        deadline = time.monotonic() + 120
        st = None
        while time.monotonic() < deadline:
            try:
                st = svc.status(2.0)
                if st.last_cycle >= fed - 1:
                    break
            except TimeoutError:
                pass
            if svc.worker.poll() is not None or svc.server.poll() is not None:
                break
            time.sleep(0.2)
        rows.append(sample(t, svc, sh, t_start, last_n)[0])
        st = svc.status(5.0)
        c = t.rc.counters(st)
        dur = time.monotonic() - t_start

        # ---- checks ------------------------------------------------------------------------
        def check(ok, what):
            print(f"  {'ok' if ok else 'FAIL'}: {what}", flush=True)
            if not ok:
                failures.append(what)

        print("\nchecks:")
        check(not sh.errors, f"feeder/subscriber errors: {sh.errors}")
        check(not sh.bad_acks, f"acks other than accepted/duplicate or with rejections: "
              f"{sh.bad_acks[:5]}")
        src = {s.source: s for s in st.sources}
        src_acc = src["soak"].observations_accepted if "soak" in src else None
        check(c.get("observations_accepted") == acked and src_acc == acked,
              f"every acked observation accounted for: observations_accepted "
              f"{c.get('observations_accepted')}, source 'soak' {src_acc}, acked {acked} "
              f"({sh.acks.get('ACK_ACCEPTED', 0)} accepted + {sh.acks.get('ACK_DUPLICATE', 0)} "
              f"duplicate final acks, {sh.retries} resends)")
        check(c.get("observations_rejected", 0) == 0 and c.get("observations_late", 0) == 0,
              f"nothing rejected or late (rejected {c.get('observations_rejected', 0)}, late "
              f"{c.get('observations_late', 0)})")
        check(st.last_cycle == fed - 1,
              f"the last fed window is published: last cycle {st.last_cycle}, fed {fed}")
        files = sorted(int(re.search(r"(\d+)", p.name).group(1))
                       for p in (svc.data_dir / "analyses").glob("analysis-*.h5"))
        keep = a.archive_keep
        want = list(range(max(0, st.last_cycle - keep + 1) if keep else 0, st.last_cycle + 1))
        check(files == want,
              f"archive holds the newest {keep or 'all'} cycles "
              f"{want[0] if want else '-'}..{want[-1] if want else '-'}: "
              f"{len(files)} files {files[:1]}..{files[-1:]}")
        with sh.lock:
            analyses = list(sh.analyses)
        seen = sorted({x[1] for x in analyses})
        gaps = sorted(set(range(0, st.last_cycle + 1)) - set(seen))
        print(f"  info: subscriber saw {len(seen)} of {st.last_cycle + 1} cycles (missed "
              f"{len(gaps)}, e.g. {gaps[:8]}; a SUB misses what is published while the server "
              f"restarts or before it reconnects)")
        for key in ("rss_mib", "log_mb"):
            ok, first, last = bounded_check(rows, key, a.warmup, a.bound)
            check(ok, f"{key} bounded: last-third max {last:.2f} <= {a.bound} x first-third max "
                  f"{first:.2f} (after {a.warmup:g} s warm-up)")
        check(not unexpected, f"no process died on its own: {[u[:3] for u in unexpected]}")
        for u in unexpected:
            print(f"    {u[1]} exited {u[2]} at t={u[0]:.0f}s; log tail:\n{u[3]}")
        check(c.get("worker_errors", 0) == 0 and st.state != "paused",
              f"state {st.state}, worker_errors {c.get('worker_errors', 0)}, last_error "
              f"{st.last_error!r}")

        # ---- outputs -----------------------------------------------------------------------
        with open(out_dir / "soak.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=SAMPLE_FIELDS)
            w.writeheader()
            w.writerows(rows)
        with open(out_dir / "analyses.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["t_s", "cycle", "latency_s", "degraded"])
            w.writerows(analyses)
        with open(out_dir / "events.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["t_s", "event", "detail"])
            w.writerows(events)
        lat = sorted(x[2] for x in analyses)
        restarts = [float(e[2]) for e in events if e[1] == "server_restart"]
        q = lambda p: lat[min(len(lat) - 1, int(p * (len(lat) - 1) + 0.5))] * 1e3  # noqa: E731
        rss = [float(r["rss_mib"]) for r in rows if r["rss_mib"] != ""]
        print("\nsummary:")
        print(f"  {dur / 60:.1f} min, {st.last_cycle + 1} cycles published "
              f"({(st.last_cycle + 1) / dur:.1f}/s), {acked} observations acked, "
              f"{sum(e[1] == 'server_kill9' for e in events)} server kills, "
              f"{sum(e[1] == 'worker_kill9' for e in events)} worker-group kills")
        if lat:
            print(f"  latency (subscriber, {len(lat)} analyses): p50 {q(0.5):.1f} ms, p99 "
                  f"{q(0.99):.1f} ms, max {lat[-1] * 1e3:.1f} ms")
        if restarts:
            print(f"  server restart (exec -> STATUS): median {statistics.median(restarts):.3f} s,"
                  f" max {max(restarts):.3f} s")
        if rss:
            print(f"  server RSS: min {min(rss):.1f}, max {max(rss):.1f} MiB; log max "
                  f"{max(float(r['log_mb']) for r in rows):.2f} MB; analyses max "
                  f"{max(float(r['analyses_mb']) for r in rows):.2f} MB")
        print("  counters: " + ", ".join(f"{k} {v}" for k, v in sorted(c.items())))
        if a.plot:
            plot(rows, analyses, events, a.plot,
                 f"rtda soak: {dur / 60:.0f} min, N32 4 members letkf, {a.ranks} ranks, "
                 f"kill every ~{a.restart_every:g} s (seed {a.seed})")
            print(f"  plot: {a.plot}")
        print(f"  CSVs: {out_dir}")
        print(f"\n{'FAILED: ' + '; '.join(failures) if failures else 'soak: all checks passed'}")
        return 1 if failures else 0
    except (Failure, TimeLimit) as e:
        print(f"soak: {e}", file=sys.stderr)
        return 1
    finally:
        signal.alarm(0)
        sh.stop.set()
        if svc is not None:
            svc.cleanup()
            if out_dir != tmp:
                for f in (svc.server_log, svc.worker_log):
                    if f.exists():
                        shutil.copy(f, out_dir / f.name)
        if a.keep or a.out_dir is None:
            # The CSVs are in tmp when no --out-dir: keep them, drop the bulky data.
            if not a.keep:
                for p in ("soak-data", "nature.h5", "obs.h5"):
                    q = tmp / p
                    shutil.rmtree(q, ignore_errors=True) if q.is_dir() else q.unlink(
                        missing_ok=True)
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
