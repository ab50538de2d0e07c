#!/usr/bin/python3
"""The server as operators run it: metrics, alert rules, logs, systemd, key reloads, restarts.

  metrics_contract  a running server exports every metric the example alert rules use
                    (deploy/prometheus/rtda-alerts.yml), every counter as rtda_<name>_total at
                    0 from the start, and docs/service.md documents every Status counter and
                    every metric family the scrape shows (and nothing it does not);
  systemd_notify    under a fake systemd notify socket: READY=1 once the server answers
                    status, WATCHDOG=1 at half of WATCHDOG_USEC, STOPPING=1 on SIGTERM; log
                    lines on stderr (nothing on stdout) with UTC timestamps and the offset;
  sighup_keys       SIGHUP re-reads the CURVE allow-lists: a connected feeder whose key was
                    removed keeps its connection, a new connection with that key is refused, a
                    newly listed key gets in; an unreadable list changes nothing; both logged
                    and counted;
  server_outage     a worker group outlives 5 s without its server: the restarted server sees
                    it join once (worker_joins = 1, one "joined" line), it continues where it
                    was, and the first analysis from the initial ensemble says
                    lineage.restarted_from_cycle = -1.

  PYTHON tests/service/ops_test.py --rtda build/client/rtda \\
      --server-bin build/server/rtda-server --worker-bin build/worker/rtda-worker \\
      [--proto-dir build/proto/python] [--case NAME]

with the interpreter service_test.py runs with (it imports its cases' machinery).
"""

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))
import service_test as st  # noqa: E402
from harness import Failure, log_tail, run_cases  # noqa: E402

CASES = ["metrics_contract", "systemd_notify", "sighup_keys", "server_outage"]
check = st.check


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return r.read().decode(), r.headers.get("Content-Type", "")


def families(text):
    """metric family name -> type, from the # TYPE lines."""
    return dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))


def sample(text, series):
    m = re.search(r"^" + re.escape(series) + r" (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def rule_metrics(path):
    """Every rtda_* metric name the rules' expressions use (histogram series -> family)."""
    names = set()
    for expr in re.findall(r"expr:\s*(?:>-\s*)?((?:.|\n)*?)(?=\n\s+(?:for|labels):)",
                           Path(path).read_text()):
        for n in re.findall(r"\b(rtda_[a-z0-9_]+)", expr):
            names.add(re.sub(r"_(bucket|sum|count)$", "", n) if n.endswith(
                ("_bucket",)) else n)
    return names


def doc_section(title):
    text = (ROOT / "docs" / "service.md").read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end >= 0 else len(text)]


def case_metrics_contract(t):
    pb, rc = t.pb, t.rc
    k = st.Case(t, "metrics-contract")
    try:
        port = st.free_tcp_port()
        k.write_config(**{"experiment.nature_file": "",
                          "server.metrics": f"tcp://127.0.0.1:{port}"})
        k.start_server()
        body, ctype = scrape(port)
        fam = families(body)
        check("text/plain" in ctype and "version=0.0.4" in ctype, f"content type {ctype!r}")
        used = rule_metrics(ROOT / "deploy" / "prometheus" / "rtda-alerts.yml")
        check(len(used) >= 5, f"the alert rules use {sorted(used)}")
        missing = sorted(n for n in used if n not in fam)
        check(not missing, f"every metric of the alert rules is exported by a running server "
              f"before anything happened (missing: {missing})")
        status = k.status()
        names = [c.name for c in status.counters]
        check(all(c.lifetime in (pb.COUNTER_SINCE_START, pb.COUNTER_DURABLE)
                  for c in status.counters),
              f"every one of the {len(names)} Status counters says its lifetime")
        for n in names:
            if n.startswith("curve_handshakes_"):
                continue
            if fam.get(f"rtda_{n}_total") != "counter" or sample(body, f"rtda_{n}_total") != 0:
                raise Failure(f"Status counter {n}: no rtda_{n}_total counter at 0 in\n"
                              f"{body[:2000]}")
        print(f"  ok: {len(names)} Status counters, each a counter rtda_<name>_total at 0")
        bad = [f for f, ty in fam.items() if ty == "counter" and not f.endswith("_total")]
        bad += [f for f, ty in fam.items() if ty == "summary"]
        check(not bad, f"counters end in _total, no summaries ({bad})")

        # One batch: the durable counter and its twin move together, the histogram of log
        # commits counts it, the per-source families appear.
        b = pb.ObservationBatch(version=pb.PROTOCOL_VERSION_1, source="metrics", seq=1)
        b.observations.add(id=1, time_seconds=k.t0, level=0, x_m=0.0, y_m=0.0, value=1.0,
                           error_sd=1.0, op=pb.OPERATOR_LINEAR_K)
        ack = pb.IngestAck()
        ack.ParseFromString(rc.send_raw(k.ep["ingest"], [b.SerializeToString()],
                                        timeout_s=5.0)[-1])
        check(ack.status == pb.ACK_ACCEPTED, f"ack {rc.ack_status_name(ack.status)}")
        body, _ = scrape(port)
        for series, want in (("rtda_observations_accepted_total", 1),
                             ("rtda_observations_accepted_since_start_total", 1),
                             ("rtda_batches_accepted_total", 1),
                             ('rtda_source_observations_accepted_total{source="metrics"}', 1),
                             ("rtda_log_commit_seconds_count", 1),
                             ("rtda_worker_connected", 0),
                             ('rtda_state{state="waiting-for-workers"}', 1)):
            got = sample(body, series)
            check(got == want, f"after one batch: {series} = {got}")
        # docs/service.md: the counter table and the metrics table, against the live server.
        counters_doc = set(re.findall(r"^\| `([a-z0-9_]+)` \|", doc_section("Status counters"),
                                      re.M))
        metrics_doc = set(re.findall(r"^\| `(rtda_[a-z0-9_]+)`", doc_section("Metrics"), re.M))
        check(counters_doc == set(names),
              f"docs/service.md lists every Status counter and no other (undocumented: "
              f"{sorted(set(names) - counters_doc)}, stale: {sorted(counters_doc - set(names))})")
        fam = families(body)  # now with a source
        per_counter = {f"rtda_{n}_total" for n in names}
        exported = set(fam) - per_counter
        check(metrics_doc == exported,
              f"docs/service.md lists every other metric family and no other (undocumented: "
              f"{sorted(exported - metrics_doc)}, stale: {sorted(metrics_doc - exported)})")

        k.shutdown()
        k.ok = True
    finally:
        k.cleanup()


def case_systemd_notify(t):
    k = st.Case(t, "systemd")
    sock = None
    try:
        k.write_config(**{"experiment.nature_file": ""})
        path = str(k.tmp / "notify.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        sock.settimeout(0.2)
        env = dict(t.env, NOTIFY_SOCKET=path, WATCHDOG_USEC="400000")
        env.pop("WATCHDOG_PID", None)
        env.pop("JOURNAL_STREAM", None)
        out_path, err_path = k.tmp / "stdout.log", k.tmp / "stderr.log"
        k.server = subprocess.Popen([t.server_bin, "--config", str(k.cfg)], env=env,
                                    stdout=open(out_path, "w"), stderr=open(err_path, "w"),
                                    start_new_session=True, cwd=k.tmp)
        k.server_log = err_path
        got = []

        def receive_until(pred, timeout):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    got.append((time.monotonic(), sock.recv(4096).decode()))
                except socket.timeout:
                    continue
                if pred(got[-1][1]):
                    return got[-1][0]
            return None

        ready = receive_until(lambda m: "READY=1" in m, 20)
        check(ready is not None, f"READY=1 notified ({[m for _, m in got]})")
        check(k.status(2.0).state == "waiting-for-workers",
              "at READY=1 the server is listening and answers status")
        log = err_path.read_text()
        check("recovered:" in log, "READY=1 comes after the log was recovered")
        start = time.monotonic()
        receive_until(lambda m: False, 2.0)
        dogs = [at for at, m in got if m.strip() == "WATCHDOG=1" and at >= start]
        check(7 <= len(dogs) <= 13, f"{len(dogs)} WATCHDOG=1 in 2 s (WATCHDOG_USEC = 0.4 s: one "
              f"every 0.2 s expected)")
        os.killpg(k.server.pid, signal.SIGTERM)
        stopping = receive_until(lambda m: "STOPPING=1" in m, 10)
        check(stopping is not None, "STOPPING=1 notified on SIGTERM")
        check(k.server.wait(timeout=15) == 0, "exit 0 after SIGTERM")
        out = out_path.read_text()
        lines = err_path.read_text().splitlines()
        stamp = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00 "
                           r"(trace|debug|info|warning|error|critical) rtda-server: ")
        check(out == "" and lines and all(stamp.match(x) for x in lines),
              f"{len(lines)} log lines on stderr, each with a UTC timestamp and its offset "
              f"(e.g. {lines[0][:40]!r}), nothing on stdout ({out[:200]!r})")
        k.ok = True
    finally:
        if sock is not None:
            sock.close()
        k.cleanup()


def case_sighup_keys(t):
    pb, zmq = t.pb, t.zmq
    k = st.Case(t, "sighup")
    socks = []
    try:
        for n in ("server", "alice", "bob", "ops"):
            k.run_cli(["keys", "--out", str(k.tmp / n)])
        server_pub = st.read_keys(k.tmp / "server.key")["public-key"]
        feeders = k.tmp / "feeders.txt"
        feeders.write_text("alice.key\n")
        k.write_config(**{"experiment.nature_file": "", "security.curve": True,
                          "security.server_key": str(k.tmp / "server.key_secret"),
                          "security.feeder_keys": str(feeders),
                          "security.control_keys": str(k.tmp / "ops.key"),
                          "security.worker_allow_any": True})
        k.start_server(wait=False)
        ctx = zmq.Context.instance()

        def sock(endpoint, who):
            return st.curve_dealer(ctx, k, endpoint, server_pub, who, socks)

        ask = st.ask

        status_req = pb.ControlRequest(version=pb.PROTOCOL_VERSION_1,
                                       command=pb.COMMAND_STATUS).SerializeToString()
        ctl = sock("control", "ops")
        deadline = time.monotonic() + 20
        reply = None
        while reply is None and time.monotonic() < deadline:
            if k.server.poll() is not None:
                raise Failure(f"rtda-server exited {k.server.returncode}:\n"
                              f"{log_tail(k.server_log)}")
            reply = ask(ctl, status_req, 1.0)
        check(reply is not None, "the operator key gets a status")

        def counters():
            r = pb.ControlReply()
            r.ParseFromString(ask(ctl, status_req, 5.0) or b"")
            return {c.name: c.value for c in r.status.counters}

        seq = [0]

        def batch(source):
            seq[0] += 1
            b = pb.ObservationBatch(version=pb.PROTOCOL_VERSION_1, source=source, seq=seq[0])
            b.observations.add(id=seq[0], time_seconds=k.t0, level=0, x_m=1.0e6, y_m=1.0e6,
                               value=1.0, error_sd=1.0, op=pb.OPERATOR_LINEAR_K)
            return b.SerializeToString()

        def accepted(s, source, timeout=3.0):
            raw = ask(s, batch(source), timeout)
            if raw is None:
                return False
            ack = pb.IngestAck()
            ack.ParseFromString(raw)
            return ack.status == pb.ACK_ACCEPTED

        alice = sock("ingest", "alice")
        check(accepted(alice, "alice", 10.0), "alice (listed) feeds")
        check(not accepted(sock("ingest", "bob"), "bob", 1.5), "bob (not listed) gets no reply")

        def hup_and_wait(counter, before):
            os.killpg(k.server.pid, signal.SIGHUP)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                c = counters()
                if c.get(counter, 0) > before:
                    return c
                time.sleep(0.1)
            raise Failure(f"{counter} did not grow after SIGHUP:\n{log_tail(k.server_log)}")

        feeders.write_text("# alice removed\nbob.key\n")
        c = hup_and_wait("key_reloads", 0)
        check(c.get("key_reloads") == 1 and c.get("key_reload_failures") == 0,
              "SIGHUP: the allow-lists are read again (key_reloads = 1)")
        check(accepted(alice, "alice"), "alice's connection made before the reload still feeds")
        check(accepted(sock("ingest", "bob"), "bob", 10.0), "bob (now listed) feeds on a new "
              "connection")
        check(not accepted(sock("ingest", "alice"), "alice", 1.5),
              "alice (removed) is refused at her next handshake")
        feeders.write_text("bob.key\nnot-a-key-file.key\n")
        c = hup_and_wait("key_reload_failures", 0)
        check(c.get("key_reloads") == 1, "an unreadable list: key_reload_failures = 1, "
              "nothing changed")
        check(accepted(sock("ingest", "bob"), "bob", 10.0), "bob still feeds (old lists kept)")
        check(c.get("curve_handshakes_denied", 0) >= 2,
              f"curve_handshakes_denied = {c.get('curve_handshakes_denied')}")
        log = Path(k.server_log).read_text()
        check("SIGHUP: CURVE allow-lists read again (ingest 1 keys, control 1 keys)" in log and
              "SIGHUP: allow-lists unchanged: security.feeder_keys" in log,
              "both reloads are logged")
        ask(ctl, pb.ControlRequest(version=pb.PROTOCOL_VERSION_1,
                                   command=pb.COMMAND_SHUTDOWN).SerializeToString(), 5.0)
        k.server.wait(timeout=15)
        k.ok = True
    finally:
        for s in socks:
            s.close(0)
        k.cleanup()


def case_server_outage(t):
    k = st.Case(t, "outage")
    try:
        k.make_data()
        k.start_server()
        k.start_worker()
        sub = k.subscriber()
        k.feed(k.window_batches(0))
        got = k.collect(sub, [0])
        sub.close()
        check(got[0].lineage.restarted_from_cycle == -1,
              f"cycle 0 from the initial ensemble: lineage.restarted_from_cycle = "
              f"{got[0].lineage.restarted_from_cycle}")
        os.killpg(k.server.pid, signal.SIGKILL)
        k.server.wait(timeout=10)
        time.sleep(5.0)
        check(k.worker.poll() is None, "the worker group outlives 5 s without its server")
        k.server_log = k.tmp / "server-after.log"
        k.start_server()
        k.wait_connected(timeout=30)
        time.sleep(4.0)  # heartbeats queued during the outage all arrive by now
        st_ = k.status()
        joins = k.t.rc.counters(st_).get("worker_joins")
        lines = [x for x in Path(k.server_log).read_text().splitlines()
                 if "worker group joined" in x]
        check(joins == 1 and len(lines) == 1 and "START_CONTINUE" in lines[0],
              f"the group joined the restarted server once (worker_joins = {joins}, "
              f"{len(lines)} joined line(s): {lines})")
        sub = k.subscriber()
        k.feed(k.window_batches(1))
        got = k.collect(sub, [1])
        sub.close()
        check(got[1].lineage.restarted_from_cycle == -1,
              f"cycle 1 continues the ensemble in memory: restarted_from_cycle = "
              f"{got[1].lineage.restarted_from_cycle}")
        k.shutdown()
        k.ok = True
    finally:
        k.cleanup()


def main():
    # The same command line as service_test.py; --proto-dir and --client-dir only matter to a
    # service_test.py that loads the client from the source tree instead of an installed one.
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rtda", required=True, help="the rtda CLI")
    ap.add_argument("--server-bin", required=True, help="rtda-server")
    ap.add_argument("--worker-bin", required=True, help="rtda-worker")
    ap.add_argument("--proto-dir", help="directory holding rtda_pb2.py")
    ap.add_argument("--client-dir", default=str(ROOT / "client" / "python"))
    ap.add_argument("--mpiexec", default="mpiexec")
    ap.add_argument("--time-limit", type=float, default=150.0, help="seconds for the run")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directories")
    ap.add_argument("--case", choices=CASES + ["all"], default="all", help="run one case")
    a = ap.parse_args()
    t = st.Tools(a)
    ok = run_cases(CASES if a.case == "all" else [a.case],
                   lambda name: globals()[f"case_{name}"](t), a.time_limit, skip=(st.Skip,))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
