#!/usr/bin/env python3
"""Writes the seed corpus of the fuzzers (tests/fuzz/corpus/<target>/): small valid messages
of every kind, built with the wire contract's Python module (rtda_pb2.py from the build tree,
proto/python). The files are committed; run this again after changing proto/rtda.proto:

    /usr/bin/python3 tests/fuzz/make_corpus.py --proto-dir build/proto/python

Formats (tests/fuzz/README.md): fuzz_control takes a ControlRequest as is; fuzz_worker_link
one mode byte then the body; fuzz_ingest a script of records
[u8 op][u8 wall step][u8 key][u16 length LE][body] after one configuration byte.
"""
import argparse
import os
import shutil
import struct
import sys

T0 = 432000.0
CYCLE = 43200.0
L = 20.0e6
N = 32


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--proto-dir", required=True, help="directory holding rtda_pb2.py")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                  "corpus"))
    args = ap.parse_args()
    sys.path.insert(0, args.proto_dir)
    import rtda_pb2 as pb

    def write(target, name, data):
        d = os.path.join(args.out, target)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)

    for t in ("fuzz_ingest", "fuzz_control", "fuzz_worker_link"):
        shutil.rmtree(os.path.join(args.out, t), ignore_errors=True)

    # ---- fuzz_ingest ----------------------------------------------------------------------
    def obs(i, k=0, level=0, x=L / 4, y=L / 2, value=1.0, sd=1.0, op=0, dt=0.0):
        return pb.Observation(id=i, time_seconds=T0 + k * CYCLE + dt, level=level, x_m=x, y_m=y,
                              value=value, error_sd=sd, op=op)

    def batch(source="src-0", seq=1, observations=(), columns=None, marker=None, truth=None,
              query=False):
        b = pb.ObservationBatch(version=pb.PROTOCOL_VERSION_1, source=source, seq=seq,
                                position_query=query)
        b.observations.extend(observations)
        if columns is not None:
            c = b.columns
            for o in columns:
                c.id.append(o.id)
                c.time_seconds.append(o.time_seconds)
                c.level.append(o.level)
                c.x_m.append(o.x_m)
                c.y_m.append(o.y_m)
                c.value.append(o.value)
                c.error_sd.append(o.error_sd)
                c.op.append(o.op)
        if marker is not None:
            b.end_of_window_seconds = T0 + marker * CYCLE
        if truth is not None:
            b.truth.time_seconds = T0 + truth * CYCLE
            b.truth.grid_n = N
            b.truth.q.extend([0.5] * (2 * N * N))
        return b.SerializeToString()

    def record(op, body=b"", wall=4, key=0):
        return bytes([op, wall, key]) + struct.pack("<H", len(body)) + body

    def script(*records, reject=False):
        return bytes([1 if reject else 0]) + b"".join(records)

    messages = batch(observations=[obs(1), obs(2, k=1, level=1, op=1, value=0.3, sd=0.1),
                                   obs(3, k=2, op=2, value=1e-4, sd=1e-5)])
    columns = batch(seq=2, columns=[obs(10 + i, k=i % 3, x=i * L / 8) for i in range(6)])
    both = batch(seq=3, observations=[obs(20)], columns=[obs(21, k=1)])
    marker = batch(seq=4, marker=1)
    marker_obs = batch(seq=5, observations=[obs(30, k=2)], marker=2)
    truth = batch(seq=6, truth=3)
    query = batch(seq=0, query=True)
    late = batch(source="src-1", seq=1, observations=[obs(40, k=0)])
    bad = batch(source="src-2", seq=1,
                observations=[obs(50, x=L), obs(51, level=2), obs(52, sd=0.0), obs(53, op=3),
                              obs(54, value=float("nan")), obs(55, k=-2), obs(56, k=40)])
    oversize = batch(source="src-3", seq=1, columns=[obs(60 + i) for i in range(9)])
    keyed = batch(source="src-a1", seq=1, observations=[obs(70)])
    write("fuzz_ingest", "messages", script(record(0, messages)))
    write("fuzz_ingest", "columns", script(record(0, columns)))
    write("fuzz_ingest", "messages-and-columns", script(record(0, both)))
    write("fuzz_ingest", "marker", script(record(0, messages), record(0, marker)))
    write("fuzz_ingest", "marker-with-observations", script(record(0, marker_obs)))
    write("fuzz_ingest", "truth", script(record(0, truth)))
    write("fuzz_ingest", "position-query", script(record(0, messages), record(3),
                                                   record(0, query)))
    write("fuzz_ingest", "duplicate", script(record(0, messages), record(3),
                                              record(1, b""), record(0, messages)))
    write("fuzz_ingest", "duplicate-in-group", script(record(0, messages), record(0, messages)))
    write("fuzz_ingest", "conflict", script(record(0, messages), record(3), record(2, b"")))
    write("fuzz_ingest", "failed-commit-retry", script(record(0, messages), record(4),
                                                        record(0, messages)))
    write("fuzz_ingest", "late-after-marker", script(record(0, marker), record(0, late)))
    write("fuzz_ingest", "late-rejected",
          script(record(0, marker), record(0, late), reject=True))
    write("fuzz_ingest", "deadline-close",
          script(record(0, messages), record(3), record(5, wall=200)))
    write("fuzz_ingest", "refused-observations", script(record(0, bad)))
    write("fuzz_ingest", "oversize-count", script(record(0, oversize)))
    write("fuzz_ingest", "granted-key", script(record(0, keyed, key=2), record(0, keyed, key=3)))
    write("fuzz_ingest", "stale-seq", script(
        *[record(0, batch(seq=s, observations=[obs(s)])) for s in range(1, 19)],
        record(0, batch(seq=1, observations=[obs(99)]))))
    write("fuzz_ingest", "structured", script(record(9, bytes(range(64))),
                                              record(12, bytes(range(255, 128, -1)))))

    # ---- fuzz_control ---------------------------------------------------------------------
    for name, cmd in [("status", pb.COMMAND_STATUS), ("pause", pb.COMMAND_PAUSE),
                      ("resume", pb.COMMAND_RESUME), ("checkpoint", pb.COMMAND_CHECKPOINT),
                      ("latest", pb.COMMAND_LATEST_ANALYSIS),
                      ("unspecified", pb.COMMAND_UNSPECIFIED)]:
        write("fuzz_control", name,
              pb.ControlRequest(version=pb.PROTOCOL_VERSION_1, command=cmd).SerializeToString())
    for f in ("letkf", "ensf", "none", "bogus"):
        write("fuzz_control", "set-filter-" + f,
              pb.ControlRequest(version=pb.PROTOCOL_VERSION_1, command=pb.COMMAND_SET_FILTER,
                                filter=f).SerializeToString())
    write("fuzz_control", "latest-with-fields",
          pb.ControlRequest(version=pb.PROTOCOL_VERSION_1, command=pb.COMMAND_LATEST_ANALYSIS,
                            with_fields=True).SerializeToString())
    write("fuzz_control", "wrong-version",
          pb.ControlRequest(command=pb.COMMAND_STATUS).SerializeToString())
    write("fuzz_control", "unknown-command", b"\x08\x01\x10\x63")

    # ---- fuzz_worker_link -----------------------------------------------------------------
    def w2s(**kw):
        return pb.WorkerToServer(version=pb.PROTOCOL_VERSION_1, **kw).SerializeToString()

    analysis = pb.Analysis(version=pb.PROTOCOL_VERSION_1, cycle=1, filter="ensf", grid_n=N,
                           members=20)
    analysis.mean.extend([1.0] * (2 * N * N))
    analysis.spread.extend([0.5] * (2 * N * N))
    raw = {
        "hello": w2s(hello=pb.WorkerHello(ranks=2, host="node1", pid=1, device="cpu",
                                          analysed_cycle=-1, device_name="AMD EPYC 7B13",
                                          toolchain="GCC 12.2.0")),
        "hello-continue": w2s(hello=pb.WorkerHello(ranks=1, host="n", analysed_cycle=0)),
        "hello-config-mismatch": w2s(hello=pb.WorkerHello(ranks=1, config_hash="deadbeef")),
        "heartbeat": w2s(heartbeat=pb.Heartbeat(unix_seconds=1.7e9, cycle=1, stage="forecast")),
        "result": w2s(result=pb.CycleResult(dispatch_id=2, analysis=analysis,
                                            task_received_unix_seconds=1.7e9,
                                            done_unix_seconds=1.7e9)),
        "checkpoint-done": w2s(checkpoint_done=pb.CheckpointDone(cycle=0, path="checkpoint")),
        "error": w2s(error=pb.WorkerError(cycle=1, error="boom", fatal=False)),
        "error-fatal": w2s(error=pb.WorkerError(cycle=1, error="boom", fatal=True)),
        "wrong-version": pb.WorkerToServer(hello=pb.WorkerHello(ranks=1)).SerializeToString(),
    }
    for name, body in raw.items():
        write("fuzz_worker_link", "raw-" + name, bytes([0]) + body)
        write("fuzz_worker_link", "raw-w1-delimiter-" + name, bytes([0 | 1 << 3 | 1 << 5]) + body)
    for mode, name in enumerate(["hello", "heartbeat", "result", "checkpoint-done", "error",
                                 "other-version", "cycle-then-message"], start=1):
        write("fuzz_worker_link", "structured-" + name, bytes([mode]) + bytes(range(48)))
        write("fuzz_worker_link", "structured-w2-" + name, bytes([mode | 2 << 3]) + bytes(48))


if __name__ == "__main__":
    main()
