#!/usr/bin/python3
"""Fault injection against rtda-server + rtda-worker (CTest label `chaos`), on the harness of
tests/service (its Case and Tools classes; N32 preset, 4 members, "linear" observations).

  kill9_storm           the windows of a twin experiment go through a feeder that retries
                        until acked, while a chaos thread kill -9s the server (restarted on the
                        same data_dir) and the 2-rank worker group (the whole session, or ONE
                        rank, which must take the group down) at random moments. Then: every
                        acked observation counted once, every cycle published (subscriber +
                        COMMAND_LATEST_ANALYSIS + data_dir/analyses), one file per cycle, and
                        mean/spread bitwise equal to `rtda experiment`;
  disk_full             the server under RLIMIT_FSIZE: the observation log fills mid-feed; the
                        server stays up, answers ACK_UNAVAILABLE with retry_after_seconds,
                        Status.ingest_state "degraded...", control answers; restarted without
                        the limit, exactly the acked batches are there;
  hung_worker_stop      SIGSTOP of the whole worker group with a cycle in flight: lost after
                        server.worker_timeout_seconds, a new group completes the cycle bitwise;
                        the old group, resumed (SIGCONT), changes nothing;
  hung_worker_timeout   RTDA_FAULT=hang-analysis (heartbeats go on, no progress) with
                        server.cycle_timeout_seconds: dropped after the cycle timeout, last_error
                        names the timeout, three such groups pause dispatching (poison window),
                        `resume` and a normal group completes the cycles bitwise;
  lying_worker          a fake worker group (Python, zmq DEALER speaking the proto) returns a
                        result for another cycle, fields of the wrong length, and CheckpointDone
                        notices for a cycle never asked / a path outside the checkpoint dir: each
                        refused (counter, last_error naming field and value), nothing published,
                        archived or deleted; a real group then completes the cycles bitwise.

Short (CTest) variant: the defaults. Long variant, e.g.

  build/python-venv/bin/python tests/chaos/chaos_test.py --case kill9_storm --rounds 20 --cycles 20 \\
      --seed 12345 --time-limit 900 --rtda build/client/rtda \\
      --server-bin build/server/rtda-server --worker-bin build/worker/rtda-worker \\
      --mpiexec mpiexec

Every random choice comes from one random.Random(seed); the seed is printed at the start
(`--seed S` replays the same schedule of faults; the processes' timing still varies).
"""

import argparse
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SERVICE_DIR = HERE.parent / "service"
sys.path.insert(0, str(SERVICE_DIR))

import service_test as svc  # noqa: E402  (tests/service: Case, Tools, process helpers)
from harness import Failure, add_service_arguments, log_tail, run_cases  # noqa: E402
from service_test import GRID_N, check, kill_session, session_pids, stop_process  # noqa: E402

CASES = ["kill9_storm", "disk_full", "hung_worker_stop", "hung_worker_timeout", "lying_worker"]
FIELD_LEN = 2 * GRID_N * GRID_N


def say(msg):
    print(f"  {msg}", flush=True)


def wait_for(cond, timeout, what, step=0.1):
    """Polls cond() (exceptions TimeoutError count as False) until it is truthy; returns it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            v = cond()
        except TimeoutError:
            v = None
        if v:
            return v
        if time.monotonic() >= deadline:
            raise Failure(f"{what}: not within {timeout:g} s")
        time.sleep(step)


# ---------------------------------------------------------------------------------------------
# Data shared by the cases: one nature run + observations and one `rtda experiment` reference.


class Shared:
    """Made once per process: nature.h5, obs.h5 and the reference archive of `rtda experiment`
    (letkf) for `cycles` cycles, in a directory of their own."""

    def __init__(self, t, cycles):
        self.t = t
        self.cycles = cycles
        self.dir = None
        self.ref = None

    def ensure(self):
        if self.ref is not None:
            return
        t0 = time.monotonic()
        k = ChaosCase(self.t, "shared", self.cycles)
        self.dir = k.tmp  # removed by cleanup(), also when what follows fails
        k.make_data(use_shared=False)
        archive = k.tmp / "reference.h5"
        k.run_cli(["experiment", "--config", str(k.cfg), "--filter", "letkf", "--out",
                   str(archive)], timeout=60 + 10 * self.cycles)
        np = self.t.np
        with self.t.h5py.File(archive, "r") as f:
            n = f["mean"].shape[0]
            if n < self.cycles:
                raise Failure(f"the reference archive holds {n} cycles, expected {self.cycles}")
            self.ref = {c: (np.asarray(f["mean"][c], dtype=np.float64),
                            np.asarray(f["spread"][c], dtype=np.float64),
                            float(f["rmse_analysis"][c])) for c in range(self.cycles)}
        k.nature.close()
        k.nature = None
        say(f"(shared data and `rtda experiment` reference of {self.cycles} cycles: "
            f"{time.monotonic() - t0:.1f} s)")

    def cleanup(self):
        if self.dir is not None and not self.t.keep:
            shutil.rmtree(self.dir, ignore_errors=True)


class ChaosCase(svc.Case):
    """A service Case with K cycles, 2-rank worker groups, fault environment, several servers."""

    def __init__(self, tools, name, cycles):
        super().__init__(tools, f"chaos-{name}")
        self.cycles = cycles
        self.settings.update({
            "experiment.cycles": cycles, "nature.states": max(24, cycles + 4),
            # Only end-of-window markers close windows: outages must not close one early.
            "window.deadline_seconds": 600.0, "window.grace_seconds": 600.0,
            "server.heartbeat_seconds": 0.2, "server.worker_timeout_seconds": 1.0,
            "model.threads": 1})
        self.servers = []

    def make_data(self, use_shared=True):
        sh = getattr(self.t, "shared", None)
        if not use_shared or sh is None:
            return super().make_data()
        sh.ensure()
        shutil.copy(sh.dir / "nature.h5", self.nature_h5)
        shutil.copy(sh.dir / "obs.h5", self.obs_h5)
        self.obs = self.t.rc.read_observation_file(str(self.obs_h5))
        self.window = self.obs.window_index()
        self.t0 = float(self.obs.cycle_time[0])
        self.nature = self.t.rc.NatureRun(str(self.nature_h5))
        self.write_config()

    @property
    def ref(self):
        return self.t.shared.ref

    @property
    def data_dir(self):
        return self.tmp / "data"

    def start_server(self, wait=True, fsize_limit=None):
        def limit():
            if fsize_limit is not None:
                resource.setrlimit(resource.RLIMIT_FSIZE, (fsize_limit, fsize_limit))
        super().start_server(wait=False, preexec_fn=limit)
        self.servers.append(self.server)
        return self.wait_server() if wait else None

    def start_group(self, ranks=2, fault=None, wait=True):
        env = dict(self.t.env)
        if fault:
            env["RTDA_FAULT"] = fault
        self.worker = subprocess.Popen(
            [self.t.mpiexec, "-n", str(ranks), "--oversubscribe", self.t.worker_bin, "--server",
             self.ep["workers"]], env=env, stdout=open(self.worker_log, "a"),
            stderr=subprocess.STDOUT, start_new_session=True, cwd=self.tmp)
        self.worker_groups.append(self.worker)
        return self.wait_connected() if wait else None

    def rank_pids(self, group):
        """The rank processes of a worker group (its session, executable = rtda-worker)."""
        out = []
        for pid in session_pids(group.pid):
            if pid == group.pid:
                continue
            try:
                exe = os.readlink(f"/proc/{pid}/exe")
            except OSError:
                continue
            if os.path.realpath(exe) == os.path.realpath(self.t.worker_bin):
                out.append(pid)
        return sorted(out)

    def cleanup(self):
        for s in self.servers:
            if s is not self.server:
                stop_process(s, "rtda-server (earlier)")
        super().cleanup()

    # ---- what the service left on disk -------------------------------------------------------
    def analysis_files(self):
        d = self.data_dir / "analyses"
        return sorted(p.name for p in d.iterdir()) if d.is_dir() else []

    def read_analysis_file(self, c):
        np, h5py = self.t.np, self.t.h5py
        path = self.data_dir / "analyses" / f"analysis-{c:08d}.h5"
        with h5py.File(path, "r") as f:
            cyc = np.asarray(f["cycle"][...]).ravel().tolist() if "cycle" in f else None
            mean = np.asarray(f["mean"][...], dtype=np.float64)
            spread = np.asarray(f["spread"][...], dtype=np.float64)
        if mean.shape[0] != 1 or spread.shape[0] != 1:
            raise Failure(f"{path.name}: mean {mean.shape}, spread {spread.shape}: expected one "
                          f"cycle")
        return cyc, mean[0], spread[0]

    def check_archive(self, cycles, what="the reference"):
        """data_dir/analyses holds exactly analysis-<c>.h5 for `cycles`, each one cycle whose
        mean and spread equal the reference bitwise."""
        np = self.t.np
        want = [f"analysis-{c:08d}.h5" for c in cycles]
        have = self.analysis_files()
        check(have == want, f"data_dir/analyses holds exactly one file per cycle "
              f"{list(cycles)[0]}..{list(cycles)[-1]} (missing "
              f"{sorted(set(want) - set(have))}, extra {sorted(set(have) - set(want))})")
        bad = []
        for c in cycles:
            cyc, m, s = self.read_analysis_file(c)
            rm, rs, _ = self.ref[c]
            if cyc is not None and cyc != [c]:
                bad.append(f"cycle {c}: file's cycle coordinate {cyc}")
            elif not (np.array_equal(m, rm) and np.array_equal(s, rs)):
                bad.append(f"cycle {c}: max |diff| mean {float(np.max(np.abs(m - rm))):.3g}, "
                           f"spread {float(np.max(np.abs(s - rs))):.3g}")
        check(not bad, f"analysis files of cycles {list(cycles)[0]}..{list(cycles)[-1]}: mean "
              f"and spread bitwise equal to {what}" + (f" -- {'; '.join(bad)}" if bad else ""))

    def check_published(self, got, what="the reference"):
        """got: dict cycle -> list of Analysis (every copy received): each equals the reference
        bitwise and used every observation of its window."""
        np = self.t.np
        bad = []
        for c, copies in sorted(got.items()):
            for a in copies:
                m, s, r = svc.fields(self.t, a)
                rm, rs, rr = self.ref[c]
                if not (np.array_equal(m, rm) and np.array_equal(s, rs) and r == rr):
                    bad.append(f"cycle {c}: max |diff| mean {float(np.max(np.abs(m - rm))):.3g}"
                               f", spread {float(np.max(np.abs(s - rs))):.3g}, rmse {r!r} vs "
                               f"{rr!r}")
                if a.lineage.observations_used != self.window_count(c):
                    bad.append(f"cycle {c}: lineage.observations_used "
                               f"{a.lineage.observations_used} != {self.window_count(c)}")
        n = sum(len(v) for v in got.values())
        check(not bad, f"{n} published analyses (cycles {sorted(got)}): bitwise equal to "
              f"{what}, observations_used = the window's count" +
              (f" -- {'; '.join(bad[:6])}" if bad else ""))


def drain(sub, into, timeout=0.0):
    """Every rtda.analysis waiting on `sub` -> into[cycle] (a list of copies)."""
    t_end = time.monotonic() + timeout
    while True:
        m = sub.recv(max(0.0, t_end - time.monotonic()))
        if m is None:
            return into
        if m[0] == "rtda.analysis":
            into.setdefault(m[1].cycle, []).append(m[1])


def kill_group(k, group, why):
    kill_session(group.pid, signal.SIGKILL)
    try:
        group.wait(timeout=10)
    except subprocess.TimeoutExpired:
        raise Failure(f"{why}: mpiexec (pid {group.pid}) still running 10 s after SIGKILL")
    wait_for(lambda: not session_pids(group.pid), 10, f"{why}: every process of the group gone")


# ---------------------------------------------------------------------------------------------
# 1. kill9_storm


def case_kill9_storm(t, a, rng):
    K = a.cycles
    k = ChaosCase(t, "storm", K)
    errors = []
    stop = threading.Event()
    feed_done = threading.Event()
    t_start = time.monotonic()

    def stamp():
        return f"[{time.monotonic() - t_start:6.2f} s]"

    try:
        k.make_data()
        k.start_server()
        k.start_group(ranks=2)
        batches = [b for c in range(K) for b in k.window_batches(c, source="chaos-storm")]
        total = sum(k.window_count(c) for c in range(K))
        check(sum(len(b.observations) for b in batches) == total,
              f"{len(batches)} batches of {total} observations for {K} windows")

        # The schedule, all drawn now from the seeded RNG: a wall-time gap after each batch,
        # and for each fault the batch it is tied to plus a delay after that batch starts to
        # be sent: 0-5 ms (between the log write, its fdatasync and the ack) or up to 0.4 s
        # (anywhere: ingest, window close, dispatch, forecast, analysis, checkpoint, publish).
        nb = len(batches)
        gaps = [rng.uniform(0.05, 2 * a.window_seconds / 3 - 0.05) for _ in range(nb)]
        kinds = ["server"] * a.rounds + ["worker"] * a.rounds
        rng.shuffle(kinds)
        worker_kinds = ["group" if i % 2 == 0 else "rank" for i in range(a.rounds)]
        rng.shuffle(worker_kinds)
        # Faults spread over the batches 1..nb-1, in order (one chaos thread runs them).
        slots = sorted(rng.sample(range(1, nb), min(len(kinds), nb - 1)))
        while len(slots) < len(kinds):
            slots.append(rng.randrange(1, nb))
        slots.sort()
        events = []
        for kind, j in zip(kinds, slots):
            delay = rng.uniform(0.0, 0.005) if rng.random() < 0.5 else rng.uniform(0.0, 0.4)
            if kind == "server":
                events.append((j, delay, "server", {"down": rng.uniform(0.0, 1.0)}))
            else:
                events.append((j, delay, worker_kinds.pop(), {"rank_index": rng.randrange(2)}))
        say(f"schedule: {K} windows in {nb} batches over ~{sum(gaps):.1f} s of gaps; faults: "
            + ", ".join(f"#{j + 1}+{d * 1000:.1f}ms {kind}" +
                        (f"(down {p['down']:.2f} s)" if kind == "server" else
                         f"(rank {p['rank_index']})" if kind == "rank" else "")
                        for j, d, kind, p in events))

        acks = {}  # (source, seq) -> final ack
        retried = {}
        # The feeder waits before a batch that a fault is tied to until the chaos thread (busy
        # restarting after the previous fault) is ready for it, so each fault hits its moment.
        progress = {"sending": -1, "at": 0.0, "armed": -1}
        progress_cv = threading.Condition()
        fault_batches = {j for j, _, _, _ in events}

        def feeder():
            try:
                with t.rc.Feeder(k.ep["ingest"], timeout_s=1.0, tries=100000) as f:
                    for j, b in enumerate(batches):
                        if stop.is_set():
                            return
                        with progress_cv:
                            if j in fault_batches:
                                progress_cv.wait_for(lambda: progress["armed"] >= j or
                                                     stop.is_set(), timeout=60)
                            progress.update(sending=j, at=time.monotonic())
                            progress_cv.notify_all()
                        before = f.retries
                        ack = f.send(b)
                        acks[(b.source, b.seq)] = ack
                        retried[(b.source, b.seq)] = f.retries - before
                        stop.wait(gaps[j])
                print(f"  {stamp()} feeder: every batch acked ({f.retries} retries)",
                      flush=True)
            except Exception as e:  # noqa: BLE001
                errors.append(f"feeder: {type(e).__name__}: {e}")
            finally:
                feed_done.set()
                with progress_cv:
                    progress_cv.notify_all()

        published = {}
        sub = t.rc.Subscriber(k.ep["publish"], ["rtda.analysis"])

        def collector():
            while not stop.is_set():
                try:
                    drain(sub, published, 0.2)
                except Exception as e:  # noqa: BLE001
                    errors.append(f"subscriber: {type(e).__name__}: {e}")
                    return

        kill_log = []

        def restart_worker(why):
            # A new group is refused while the server still trusts the old one: wait for it to
            # be declared lost (worker_timeout_seconds).
            wait_for(lambda: not k.status(2.0).workers.connected, 15,
                     f"{why}: the server declares the group lost")
            k.start_group(ranks=2)

        def chaos():
            try:
                for j, delay, kind, p in events:
                    # Everything slow (status, ps) before the trigger: the kill itself follows it
                    # by `delay` only.
                    st = old = ranks = sess = None
                    if kind == "server":
                        try:
                            st = k.status(1.0)
                        except TimeoutError:
                            pass
                    else:
                        old = k.worker
                        if old.poll() is not None:
                            raise Failure(f"the worker group exited {old.returncode} by "
                                          f"itself:\n{log_tail(k.worker_log)}")
                        ranks = k.rank_pids(old)
                        sess = session_pids(old.pid)
                        if len(ranks) != 2:
                            raise Failure(f"worker group: expected 2 rank processes in session "
                                          f"{old.pid}, found {ranks}")
                    with progress_cv:
                        progress["armed"] = j
                        progress_cv.notify_all()
                        progress_cv.wait_for(lambda: progress["sending"] >= j or
                                             feed_done.is_set() or stop.is_set())
                        at = progress["at"] if progress["sending"] == j else time.monotonic()
                    if stop.is_set():
                        return
                    time.sleep(max(0.0, at + delay - time.monotonic()))
                    if kind == "server":
                        os.killpg(k.server.pid, signal.SIGKILL)
                        k.server.wait(timeout=10)
                        print(f"  {stamp()} kill -9 rtda-server (last cycle "
                              f"{st.last_cycle if st else '?'}); restart in {p['down']:.2f} s",
                              flush=True)
                        time.sleep(p["down"])
                        k.start_server()
                        kill_log.append("server")
                        continue
                    if kind == "group":
                        for pid in sess:  # mpiexec and its ranks at once
                            try:
                                os.kill(pid, signal.SIGKILL)
                            except ProcessLookupError:
                                pass
                        kill_session(old.pid, signal.SIGKILL)
                        print(f"  {stamp()} kill -9 worker group (mpiexec {old.pid}, ranks "
                              f"{ranks})", flush=True)
                        old.wait(timeout=10)
                    else:
                        victim = ranks[p["rank_index"]]
                        os.kill(victim, signal.SIGKILL)
                        print(f"  {stamp()} kill -9 ONE rank (pid {victim} of {ranks})",
                              flush=True)
                        try:
                            old.wait(timeout=15)
                        except subprocess.TimeoutExpired:
                            raise Failure(f"kill -9 of rank {victim}: mpiexec {old.pid} still "
                                          f"running 15 s later (session {session_pids(old.pid)})")
                        wait_for(lambda: not session_pids(old.pid), 10,
                                 f"kill -9 of rank {victim}: the rest of the group exits")
                        print(f"  {stamp()} the group went down with it (mpiexec exit "
                              f"{old.returncode})", flush=True)
                    restart_worker(f"after kill -9 ({kind})")
                    print(f"  {stamp()} new worker group connected", flush=True)
                    kill_log.append(kind)
            except Exception as e:  # noqa: BLE001
                errors.append(f"chaos: {type(e).__name__}: {e}")
            finally:
                with progress_cv:
                    progress["armed"] = nb  # the feeder waits for nothing more
                    progress_cv.notify_all()

        threads = [threading.Thread(target=f, name=n, daemon=True)
                   for f, n in ((feeder, "feeder"), (collector, "collector"), (chaos, "chaos"))]
        for th in threads:
            th.start()
        chaos_thread = threads[2]
        while (chaos_thread.is_alive() or not feed_done.is_set()) and not errors:
            time.sleep(0.1)
        if errors:
            stop.set()
            for th in threads:
                th.join(timeout=15)
            raise Failure("; ".join(errors))
        say(f"{stamp()} faults done: {', '.join(kill_log)}; waiting for cycle {K - 1}")

        def done():
            st = k.status(2.0)
            return st if st.last_cycle == K - 1 else None
        try:
            st = wait_for(done, 60 + 5 * K, f"cycle {K - 1} published")
        except Failure:
            st = k.status()
            raise Failure(f"cycle {K - 1} not published within {60 + 5 * K} s after the storm; "
                          f"status:\n{t.rc.status_text(st)}\nlast_error {st.last_error!r}")
        time.sleep(0.3)
        stop.set()
        for th in threads:
            th.join(timeout=10)
        drain(sub, published, 0.2)
        sub.close()
        if errors:
            raise Failure("; ".join(errors))

        # --- accounting -----------------------------------------------------------------------
        pb = t.pb
        statuses = {}
        bad = []
        for b in batches:
            ack = acks.get((b.source, b.seq))
            if ack is None:
                bad.append(f"#{b.seq}: no ack")
                continue
            name = t.rc.ack_status_name(ack.status)
            statuses[name] = statuses.get(name, 0) + 1
            if ack.status == pb.ACK_DUPLICATE and retried[(b.source, b.seq)] == 0:
                bad.append(f"#{b.seq}: ACK_DUPLICATE on the first try")
            if ack.status not in (pb.ACK_ACCEPTED, pb.ACK_DUPLICATE) or \
                    ack.accepted != len(b.observations) or ack.rejected or ack.late:
                bad.append(f"#{b.seq}: {name} accepted {ack.accepted} of {len(b.observations)}"
                           f", rejected {ack.rejected}, late {ack.late} {ack.error!r}")
        check(not bad, f"every batch acked ACK_ACCEPTED or (after a retry) ACK_DUPLICATE with "
              f"all its observations: {statuses}, {sum(retried.values())} retries" +
              (f" -- {'; '.join(bad[:8])}" if bad else ""))
        acked = sum(acks[(b.source, b.seq)].accepted for b in batches)
        c = t.rc.counters(st)
        per_source = ({x.source: x.observations_accepted for x in st.sources}
                      if "sources" in st.DESCRIPTOR.fields_by_name else "-")
        check(c.get("observations_accepted") == acked == total,
              f"observations_accepted = {c.get('observations_accepted')} = {acked} acked "
              f"observations counted once (= {total} in {K} windows; Status.sources says "
              f"{per_source})")

        # --- every cycle published, once on disk, bitwise ---------------------------------
        r = t.rc.control(k.ep["control"], pb.COMMAND_LATEST_ANALYSIS, with_fields=True)
        check(r.ok and r.analysis.cycle == K - 1,
              f"COMMAND_LATEST_ANALYSIS: cycle {r.analysis.cycle} (ok {r.ok} {r.error!r})")
        latest = {K - 1: [r.analysis]}
        on_disk = [int(m.group(1)) for n in k.analysis_files()
                   if (m := re.fullmatch(r"analysis-(\d{8})\.h5", n))]
        seen = set(published) | set(latest) | set(on_disk)
        dups = {cy: len(v) for cy, v in published.items() if len(v) > 1}
        check(seen == set(range(K)),
              f"every cycle 0..{K - 1} published: subscriber got {sorted(published)} "
              f"(published twice, after a restart: {dups or 'none'}), latest {K - 1}, files "
              f"{sorted(on_disk)}")
        k.check_published(published, "`rtda experiment`")
        k.check_published(latest, "`rtda experiment`")
        k.check_archive(range(K), "`rtda experiment`")
        say(f"storm: {kill_log.count('server')} server kills, {kill_log.count('group')} "
            f"worker-group kills, {kill_log.count('rank')} single-rank kills; counters "
            f"worker_groups_lost {c.get('worker_groups_lost')}, cycles_replayed "
            f"{c.get('cycles_replayed')}, batches_duplicate {c.get('batches_duplicate')}")
        k.shutdown()
        k.ok = True
    finally:
        stop.set()
        k.cleanup()


# ---------------------------------------------------------------------------------------------
# 2. disk_full


def case_disk_full(t, a, rng):
    pb, rc = t.pb, t.rc
    UNAVAILABLE = getattr(pb, "ACK_UNAVAILABLE", 7)  # proto/rtda.proto: ACK_UNAVAILABLE = 7

    def ingest_state(st):
        if "ingest_state" not in st.DESCRIPTOR.fields_by_name:
            raise Failure("proto/rtda.proto has no Status.ingest_state (contract not built)")
        return st.ingest_state
    k = ChaosCase(t, "disk-full", 4)
    try:
        k.make_data()
        k.write_config(**{"experiment.nature_file": ""})  # no worker group: ingest only
        batches = [b for c in range(4) for b in k.window_batches(c, source="chaos-disk")]
        sizes = [len(b.SerializeToString()) for b in batches]
        fit = rng.randint(2, 6)  # batches that fit under the limit
        limit = int(4096 + sum(sizes[:fit]) + 0.5 * sizes[fit])
        say(f"RLIMIT_FSIZE = {limit} bytes: about {fit} of {len(batches)} batches "
            f"({sizes[0]} bytes each) fit in the log segment")
        st = k.start_server(fsize_limit=limit)
        state0 = ingest_state(st) if "ingest_state" in st.DESCRIPTOR.fields_by_name else "(none)"
        say(f"ingest_state at start: {state0!r}")
        acks = []
        first_unavailable = None
        with rc.Feeder(k.ep["ingest"], timeout_s=3.0, tries=2) as f:
            for i, b in enumerate(batches):
                try:
                    # max_rate_waits=0: see each ACK_UNAVAILABLE (the client would wait it out)
                    ack = f.send(b, max_rate_waits=0)
                except TimeoutError as e:
                    ret = k.server.poll()
                    raise Failure(f"#{b.seq} (batch {i + 1}, past the file-size limit): no ack "
                                  f"({e}); rtda-server " +
                                  (f"exited {ret}" + (" (SIGXFSZ)" if ret == -signal.SIGXFSZ
                                                      else "") if ret is not None
                                   else "still running") + f"\n{log_tail(k.server_log, 15)}")
                acks.append(ack)
                if ack.status == UNAVAILABLE and first_unavailable is None:
                    first_unavailable = i
                if first_unavailable is not None and i >= first_unavailable + 2:
                    break
        names = [rc.ack_status_name(x.status) for x in acks]
        check(first_unavailable is not None,
              f"the log hit the file-size limit: acks {names}")
        ok_part, un_part = acks[:first_unavailable], acks[first_unavailable:]
        check(first_unavailable >= 1 and all(x.status == pb.ACK_ACCEPTED for x in ok_part),
              f"batches 1..{first_unavailable} ACK_ACCEPTED before the limit ({names})")
        check(all(x.status == UNAVAILABLE and x.retry_after_seconds > 0 and
                  x.accepted == 0 for x in un_part),
              f"from batch {first_unavailable + 1} on: ACK_UNAVAILABLE with "
              f"retry_after_seconds > 0 and nothing accepted "
              f"({[(rc.ack_status_name(x.status), x.retry_after_seconds, x.accepted) for x in un_part]}"
              f"; error {un_part[0].error!r})")
        check(k.server.poll() is None, "rtda-server still running at the file-size limit")
        st = k.status()
        check(ingest_state(st).startswith("degraded"),
              f"Status.ingest_state = {ingest_state(st)!r} (expected 'degraded: ...')")
        acked_obs = sum(len(b.observations) for b in batches[:first_unavailable])
        c = rc.counters(st)
        check(c.get("observations_accepted") == acked_obs,
              f"observations_accepted = {c.get('observations_accepted')} = {acked_obs} in the "
              f"{first_unavailable} acked batches")
        time.sleep(0.5)
        st = k.status()
        check(k.server.poll() is None and st.state != "",
              f"control keeps answering while degraded (state {st.state}, ingest_state "
              f"{ingest_state(st)!r})")

        # Restart without the limit on the same data_dir.
        old = k.server
        try:
            rc.control(k.ep["control"], pb.COMMAND_SHUTDOWN, timeout_s=5.0)
            old.wait(timeout=10)
            how = f"shutdown (exit {old.returncode})"
        except (TimeoutError, subprocess.TimeoutExpired):
            os.killpg(old.pid, signal.SIGKILL)
            old.wait(timeout=10)
            how = "kill -9 (no clean shutdown within 10 s)"
        say(f"degraded server stopped by {how}; restarting without the limit")
        st = k.start_server()
        c = rc.counters(st)
        check(c.get("observations_accepted") == acked_obs and ingest_state(st) in ("ok", ""),
              f"after the restart: observations_accepted = {c.get('observations_accepted')} = "
              f"{acked_obs} (exactly the acked batches), ingest_state {ingest_state(st)!r}")
        sent = batches[:len(acks)]
        with rc.Feeder(k.ep["ingest"], timeout_s=3.0, tries=3) as f:
            again = [f.send(b, max_rate_waits=0) for b in sent]
        want = [pb.ACK_DUPLICATE] * first_unavailable + \
            [pb.ACK_ACCEPTED] * (len(sent) - first_unavailable)
        check([x.status for x in again] == want and
              all(x.accepted == len(b.observations) for x, b in zip(again, sent)),
              f"re-sent: the acked batches are duplicates, the unavailable ones are new "
              f"({[rc.ack_status_name(x.status) for x in again]})")
        c = k.counters()
        total = sum(len(b.observations) for b in sent)
        check(c.get("observations_accepted") == total,
              f"observations_accepted = {c.get('observations_accepted')} = {total}")
        k.shutdown()
        k.ok = True
    finally:
        k.cleanup()


# ---------------------------------------------------------------------------------------------
# 3. hung worker groups


def case_hung_worker_stop(t, a, rng):
    k = ChaosCase(t, "hung-stop", 4)
    try:
        k.make_data()
        k.write_config(**{"server.worker_timeout_seconds": 1.5})
        k.start_server()
        k.start_group(ranks=2)
        sub = k.subscriber()
        batches = {c: k.window_batches(c, source="chaos-stop") for c in range(4)}
        got = {}
        k.feed(batches[0] + batches[1])
        k.collect(sub, [0, 1], into=got)
        k.feed(batches[2][:2])
        time.sleep(rng.uniform(0.0, 0.5))
        old = k.worker
        pids = session_pids(old.pid)
        kill_session(old.pid, signal.SIGSTOP)
        stopped_at = time.monotonic()
        say(f"SIGSTOP worker group (session {old.pid}: {pids})")
        k.feed(batches[2][2:])  # closes window 2: dispatched to the stopped group
        st = wait_for(lambda: (s := k.status()).workers.cycle_in_flight == 2 and s, 5,
                      "cycle 2 dispatched to the stopped group")
        check(st.workers.connected, "cycle 2 in flight on the stopped group")
        st = wait_for(lambda: not (s := k.status()).workers.connected and s, 10,
                      "the stopped group declared lost")
        lost_after = time.monotonic() - stopped_at
        check(lost_after >= 1.2 and t.rc.counters(st).get("worker_groups_lost") == 1,
              f"declared lost {lost_after:.2f} s after SIGSTOP (worker_timeout_seconds = 1.5), "
              f"worker_groups_lost = {t.rc.counters(st).get('worker_groups_lost')}")
        k.worker = None
        k.start_group(ranks=2)
        k.collect(sub, [2], into=got)
        k.feed(batches[3])
        k.collect(sub, [3], into=got)
        # The old group wakes up: its stale task, result and hello must change nothing.
        kill_session(old.pid, signal.SIGCONT)
        say("SIGCONT the old group")
        late = {}
        drain(sub, late, 3.0)
        st = k.status()
        check(not late and st.last_cycle == 3 and st.workers.connected,
              f"after SIGCONT of the old group: nothing published ({sorted(late)}), last cycle "
              f"{st.last_cycle}, the new group still connected")
        try:
            old.wait(timeout=5)
            say(f"the old group exited by itself ({old.returncode})")
        except subprocess.TimeoutExpired:
            say("the old group is still running: killed")
        kill_group(k, old, "the old group")
        sub.close()
        k.check_published({c: [got[c]] for c in range(4)}, "`rtda experiment`")
        k.check_archive(range(4), "`rtda experiment`")
        k.shutdown()
        k.ok = True
    finally:
        k.cleanup()


def case_hung_worker_timeout(t, a, rng):
    cycle_timeout = 2.0
    k = ChaosCase(t, "hung-timeout", 4)
    try:
        k.make_data()
        k.write_config(**{"server.cycle_timeout_seconds": cycle_timeout,
                          "server.worker_timeout_seconds": 1.5})
        k.start_server()
        sub = k.subscriber()
        batches = {c: k.window_batches(c, source="chaos-hang") for c in range(4)}
        k.feed(batches[0])
        got = {}
        for i in range(1, 4):
            k.start_group(ranks=2, fault="hang-analysis")
            st = wait_for(lambda: (s := k.status()).workers.cycle_in_flight == 0 and s, 20,
                          f"hung group {i}: cycle 0 dispatched")
            dispatched = time.monotonic()
            before = t.rc.counters(st)

            def dropped():
                s = k.status()
                drain(sub, got)
                if got:
                    raise Failure(f"the group started with RTDA_FAULT=hang-analysis published "
                                  f"cycle(s) {sorted(got)} (is RTDA_FAULT implemented?)")
                return s if not s.workers.connected else None
            try:
                st = wait_for(dropped, cycle_timeout + 8, f"hung group {i} dropped")
            except Failure as e:
                s = k.status()
                raise Failure(f"{e} (server.cycle_timeout_seconds = {cycle_timeout:g}; state "
                              f"{s.state}, stage {s.workers.stage}, in flight "
                              f"{s.workers.cycle_in_flight}, heartbeat age "
                              f"{s.workers.last_heartbeat_age_seconds:.1f} s, last_error "
                              f"{s.last_error!r})")
            after = time.monotonic() - dispatched
            c = t.rc.counters(st)
            check(cycle_timeout - 0.3 <= after <= cycle_timeout + 5,
                  f"hung group {i} dropped {after:.2f} s after dispatch (cycle_timeout_seconds "
                  f"= {cycle_timeout:g}) while it heartbeats")
            check("timeout" in st.last_error.lower() or "timed out" in st.last_error.lower(),
                  f"last_error names the timeout: {st.last_error!r}")
            check(c.get("worker_groups_lost", 0) == before.get("worker_groups_lost", 0),
                  "not a heartbeat loss (worker_groups_lost unchanged)")
            want = "paused" if i == 3 else None
            check((st.state == "paused") == (i == 3),
                  f"after {i} timeout(s) of cycle 0: state {st.state!r}" +
                  (" (three failures pause dispatching)" if want else ""))
            kill_group(k, k.worker, f"hung group {i}")
            k.worker = None
            say(f"hung group {i}: counters " + ", ".join(
                f"{n} {v}" for n, v in sorted(c.items())
                if "timeout" in n or "fail" in n or "error" in n or "lost" in n))
        k.start_group(ranks=2)
        time.sleep(1.0)
        st = k.status()
        check(st.state == "paused" and st.last_cycle == -1,
              f"a normal group joined while paused: nothing dispatched (state {st.state}, last "
              f"cycle {st.last_cycle})")
        r = t.rc.control(k.ep["control"], t.pb.COMMAND_RESUME)
        check(r.ok, f"resume: {r.error or r.message}")
        got1 = {}
        k.collect(sub, [0], into=got1)
        k.feed(batches[1])
        k.collect(sub, [1], into=got1)
        sub.close()
        k.check_published({c: [got1[c]] for c in (0, 1)}, "`rtda experiment`")
        k.check_archive(range(2), "`rtda experiment`")
        k.shutdown()
        k.ok = True
    finally:
        k.cleanup()


# ---------------------------------------------------------------------------------------------
# 4. lying_worker


class FakeWorker:
    """A worker group in Python: one DEALER on the workers endpoint speaking WorkerToServer /
    ServerToWorker. pump() receives (welcome, tasks, hello_again, refused) and heartbeats."""

    def __init__(self, t, endpoint, heartbeat=0.2):
        self.t, self.ep, self.hb = t, endpoint, heartbeat
        self.sock = None
        self.incarnation = 0

    def connect(self):
        zmq = self.t.zmq
        self.close()
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(self.ep)
        self.incarnation += 1
        self.welcome = None
        self.tasks = []
        self.refused = None
        self.hello_again = False
        self.published = []
        self.last_beat = 0.0
        self.hello()

    def close(self):
        if self.sock is not None:
            self.sock.close(0)
            self.sock = None

    def msg(self):
        return self.t.pb.WorkerToServer(version=self.t.pb.PROTOCOL_VERSION_1)

    def send(self, m):
        self.sock.send(m.SerializeToString())

    def hello(self):
        m = self.msg()
        m.hello.ranks = 1
        m.hello.host = f"lying-worker-{self.incarnation}"
        m.hello.pid = os.getpid()
        m.hello.device = "cpu"
        m.hello.analysed_cycle = -1
        self.send(m)

    def pump(self, seconds):
        zmq, pb = self.t.zmq, self.t.pb
        end = time.monotonic() + seconds
        while True:
            now = time.monotonic()
            if now - self.last_beat >= self.hb:
                m = self.msg()
                m.heartbeat.unix_seconds = time.time()
                m.heartbeat.cycle = -1
                m.heartbeat.stage = "idle"
                self.send(m)
                self.last_beat = now
            left = end - time.monotonic()
            if left <= 0:
                return
            if self.sock.poll(int(min(left, self.hb / 2) * 1000), zmq.POLLIN):
                while self.sock.poll(0, zmq.POLLIN):
                    s = pb.ServerToWorker()
                    s.ParseFromString(self.sock.recv())
                    body = s.WhichOneof("body")
                    if body == "welcome":
                        self.welcome = s.welcome
                    elif body == "task":
                        self.tasks.append(s.task)
                    elif body == "hello_again":
                        self.hello_again = True  # dropped: join() reconnects from scratch
                    elif body == "refused":
                        self.refused = s.refused
                    elif body == "result_published":
                        self.published.append(s.result_published)

    def pump_until(self, cond, timeout, what):
        deadline = time.monotonic() + timeout
        while True:
            v = cond()
            if v:
                return v
            if time.monotonic() > deadline:
                raise Failure(f"fake worker: {what}: not within {timeout:g} s")
            self.pump(0.05)

    def result(self, task, cycle=None, mean=None, spread=None, n_obs=None, diagnostics=None):
        m = self.msg()
        r = m.result
        r.dispatch_id = task.dispatch_id
        r.task_received_unix_seconds = time.time()
        r.done_unix_seconds = time.time()
        an = r.analysis
        an.cycle = task.cycle if cycle is None else cycle
        an.valid_time_seconds = task.valid_time_seconds
        an.filter = task.filter
        an.grid_n = GRID_N
        an.members = svc.MEMBERS
        an.mean.extend([1.0] * FIELD_LEN if mean is None else mean)
        an.spread.extend([0.5] * FIELD_LEN if spread is None else spread)
        for name, v in (diagnostics or {}).items():
            an.diagnostics[name] = v
        an.lineage.observations_used = len(task.columns.id) if n_obs is None else n_obs
        an.lineage.model = "sqg"
        return m

    def checkpoint_done(self, cycle, path):
        m = self.msg()
        m.checkpoint_done.cycle = cycle
        m.checkpoint_done.path = str(path)
        return m


def refusal_counters(c):
    return {n: v for n, v in c.items()
            if "refus" in n and n.startswith(("worker", "checkpoint", "result", "cycle"))}


def case_lying_worker(t, a, rng):
    k = ChaosCase(t, "lying", 4)
    fake = None
    try:
        k.make_data()
        k.start_server()
        k.start_group(ranks=1)
        sub = k.subscriber()
        batches = {c: k.window_batches(c, source="chaos-lie") for c in range(4)}
        got = {}
        k.feed(batches[0] + batches[1])
        k.collect(sub, [0, 1], into=got)
        wait_for(lambda: k.status().newest_checkpoint_cycle == 1, 15, "checkpoint of cycle 1")
        ckdir = k.data_dir / "checkpoints"
        wait_for(lambda: (ckdir / "checkpoint-00000001.h5").exists(), 5, "checkpoint-1 file")
        kill_group(k, k.worker, "the real group")
        k.worker = None
        wait_for(lambda: not k.status().workers.connected, 10, "the real group declared lost")
        ck_before = sorted(p.name for p in ckdir.iterdir())
        say(f"checkpoints before the liar: {ck_before}")

        fake = FakeWorker(t, k.ep["workers"])
        lie_cycle = 2 + rng.randint(3, 9)
        short_len = FIELD_LEN - rng.randint(1, 40)
        never_cycles = sorted(rng.sample(range(40, 90), 4))
        outside = k.data_dir / "checkpoint-00000002.h5"  # next to checkpoints/, not in it
        shutil.copy(ckdir / "checkpoint-00000001.h5", outside)
        sneaky = ckdir / ".." / outside.name
        say(f"lies: result cycle {lie_cycle} for task 2; mean of {short_len} values; "
            f"CheckpointDone for never-asked cycles {never_cycles}; CheckpointDone path "
            f"{sneaky}")

        def join(why):
            """(Re)connects the fake group from a fresh socket once the server has no group."""
            fake.close()
            st = wait_for(lambda: not (s := k.status()).workers.connected and s, 10,
                          f"{why}: the server drops the lying group")
            if st.state == "paused":
                # Refused results count toward the poison-window pause: the operator resumes.
                say(f"{why}: dispatching paused after the refusals (last_error "
                    f"{st.last_error!r}): resume")
                r = t.rc.control(k.ep["control"], t.pb.COMMAND_RESUME)
                check(r.ok, f"resume: {r.error or r.message}")
            fake.connect()
            fake.pump_until(lambda: fake.welcome is not None or fake.refused, 10,
                            f"{why}: welcome")
            if fake.refused:
                raise Failure(f"{why}: fake group refused: {fake.refused}")

        expect = {"last": 1, "files": k.analysis_files()}  # what a refused lie must leave

        def expect_refusal(what, field_words, value, counters_before, error_before):
            leaked = {}

            def refused():
                st = k.status()
                drain(sub, leaked)
                now = refusal_counters(t.rc.counters(st))
                return (sum(now.values()) > sum(counters_before.values()) or
                        (st.last_error and st.last_error != error_before))
            try:
                fake.pump_until(refused, 5, f"{what}: refused")
            except Failure:
                pass  # the checks below say what is missing
            fake.pump(0.3)
            drain(sub, leaked)
            st = k.status()
            c_now = refusal_counters(t.rc.counters(st))
            files = k.analysis_files()
            check(not leaked and st.last_cycle == expect["last"] and files == expect["files"],
                  f"{what}: nothing published ({sorted(leaked)}), last_cycle {st.last_cycle} "
                  f"(was {expect['last']}), analyses {files}")
            check(sum(c_now.values()) > sum(counters_before.values()),
                  f"{what}: counted as refused ({c_now or 'no *refused* counter'}; before "
                  f"{counters_before})")
            err = st.last_error
            check(any(w in err for w in field_words) and str(value) in err,
                  f"{what}: last_error names the field and the value: {err!r}")
            return st

        # (a) a result for another cycle
        join("lie a")
        k.feed(batches[2])
        fake.pump_until(lambda: fake.tasks, 10, "task for cycle 2")
        task = fake.tasks.pop(0)
        check(task.cycle == 2, f"the fake group got cycle {task.cycle} (checkpoint "
              f"{task.checkpoint})")
        st0 = k.status()
        fake.send(fake.result(task, cycle=lie_cycle))
        expect_refusal(f"result with analysis.cycle = {lie_cycle} for cycle 2", ["cycle"],
                       lie_cycle, refusal_counters(t.rc.counters(st0)), st0.last_error)

        # (b) fields of the wrong length
        join("lie b")
        fake.pump_until(lambda: fake.tasks, 10, "cycle 2 dispatched again")
        task = fake.tasks.pop(0)
        st0 = k.status()
        fake.send(fake.result(task, mean=[1.0] * short_len))
        expect_refusal(f"mean of {short_len} values (expected {FIELD_LEN})", ["mean"],
                       short_len, refusal_counters(t.rc.counters(st0)), st0.last_error)

        # An honest answer for cycle 2 (the reference's bits), so that the checkpoint notice
        # that follows is wrong in its path only.
        join("honest")
        fake.pump_until(lambda: fake.tasks, 10, "cycle 2 dispatched again")
        task = fake.tasks.pop(0)
        rm, rs, rr = k.ref[2]
        fake.send(fake.result(task, mean=rm.ravel().tolist(), spread=rs.ravel().tolist(),
                              diagnostics={"rmse_analysis": rr}))
        fake.pump_until(lambda: task.dispatch_id in fake.published, 10,
                        "the honest result of cycle 2 published")
        got.update({c: v[-1] for c, v in drain(sub, {}, 0.5).items()})
        check(k.status().last_cycle == 2 and task.checkpoint,
              "the honest result of cycle 2 is published; the task asked for a checkpoint")
        expect.update(last=2, files=k.analysis_files())

        # (c) CheckpointDone outside the checkpoint dir, then for cycles never asked
        st0 = k.status()
        fake.send(fake.checkpoint_done(2, sneaky))
        st = expect_refusal(f"CheckpointDone path {sneaky}", ["path", "checkpoint"], sneaky,
                            refusal_counters(t.rc.counters(st0)), st0.last_error)
        check(st.newest_checkpoint_cycle == 1 and outside.exists(),
              f"newest_checkpoint_cycle stays 1 ({st.newest_checkpoint_cycle}); "
              f"{outside.name} outside the dir untouched")
        join("lie c")
        st0 = k.status()
        for cy in never_cycles:
            fake.send(fake.checkpoint_done(cy, ckdir / f"checkpoint-{cy:08d}.h5"))
        st = expect_refusal(f"CheckpointDone for never-asked cycles {never_cycles}",
                            ["checkpoint", "cycle"], never_cycles[0],
                            refusal_counters(t.rc.counters(st0)), st0.last_error)
        ck_after = sorted(p.name for p in ckdir.iterdir())
        check(ck_after == ck_before and st.newest_checkpoint_cycle == 1,
              f"no checkpoint deleted or adopted: {ck_after} (before {ck_before}), "
              f"newest_checkpoint_cycle {st.newest_checkpoint_cycle}")
        fake.close()

        # A real group completes the cycles.
        st = wait_for(lambda: not (s := k.status()).workers.connected and s, 10,
                      "the lying group dropped")
        if st.state == "paused":
            say("dispatching paused after the refusals: resume")
            check(t.rc.control(k.ep["control"], t.pb.COMMAND_RESUME).ok, "resume")
        k.start_group(ranks=2)
        k.feed(batches[3])
        k.collect(sub, [3], into=got)
        sub.close()
        k.check_published({3: [got[3]]}, "`rtda experiment`")
        k.check_archive(range(4), "`rtda experiment`")
        k.shutdown()
        k.ok = True
    finally:
        if fake is not None:
            fake.close()
        k.cleanup()


# ---------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    add_service_arguments(ap, 110.0)
    ap.add_argument("--case", choices=CASES + ["all"], default="all", help="run one case")
    ap.add_argument("--seed", type=int, help="seed of every random choice (default: fresh)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="kill9_storm: server kills, and as many worker kills (half of them of "
                    "one rank)")
    ap.add_argument("--cycles", type=int, default=8, help="kill9_storm: windows fed")
    ap.add_argument("--window-seconds", type=float, default=0.9,
                    help="kill9_storm: mean wall time between windows")
    a = ap.parse_args()
    if a.rounds < 1 or a.cycles < 2:
        ap.error("--rounds >= 1 and --cycles >= 2")
    seed = a.seed if a.seed is not None else int.from_bytes(os.urandom(4), "little")
    print(f"seed {seed} (replay: --seed {seed}); rounds {a.rounds}, cycles {a.cycles}",
          flush=True)
    t = svc.Tools(a)
    for b in (t.rtda, t.server_bin, t.worker_bin):
        if not os.access(b, os.X_OK):
            print(f"FAIL: {b} is not an executable", file=sys.stderr)
            return 1
    t.shared = Shared(t, max(a.cycles, 4))

    def run_one(name):
        globals()[f"case_{name}"](t, a, random.Random(f"{seed}:{name}"))
    try:
        ok = run_cases(CASES if a.case == "all" else [a.case], run_one, a.time_limit,
                       label=f" (seed {seed})")
    finally:
        t.shared.cleanup()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
