"""The command line: python3 -m rtda_client feed|watch|status|pause|resume|checkpoint|
set-filter|shutdown|plot (docs/python.md).

  feed    send an observation file (rtda observe) window by window to the ingest endpoint,
          waiting for each IngestAck and retrying the same (source, seq) on a timeout;
  watch   subscribe to the publish endpoint and print one line per Analysis;
  status  the server's Status as text, or with --json as `rtda status --json` prints it;
  pause, resume, checkpoint, set-filter, shutdown: the control verbs;
  plot    field maps (PNG) of one cycle of an analysis archive.

With CURVE (security.curve = true on the server), every command takes --server-key (the
server's public .key file) and --client-key (this client's .key_secret from `rtda keys`).
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

import zmq

from .control import COMMANDS, control, status, status_json, status_text
from .feed import feed_file
from .keys import KeyFileError, curve_from_options
from .subscribe import TOPICS, analysis_line, subscribe
from .wire import DEFAULT_CONTROL, DEFAULT_INGEST, DEFAULT_PUBLISH


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python3 -m rtda_client",
                                description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--no-delimiter", action="store_true",
                   help="send requests without the empty REQ delimiter frame")
    sec = argparse.ArgumentParser(add_help=False)
    sec.add_argument("--server-key", metavar="FILE",
                     help="CURVE: the server's public key (NAME.key from rtda keys, or Z85)")
    sec.add_argument("--client-key", "--key", dest="client_key", metavar="FILE",
                     help="CURVE: this client's key pair (NAME.key_secret; default: a fresh "
                          "pair)")
    sub = p.add_subparsers(dest="command", required=True)

    f = sub.add_parser("feed", parents=[sec], help="send an observation file to the ingest "
                       "endpoint")
    f.add_argument("--obs", required=True, help="observation file (rtda observe)")
    f.add_argument("--server", default=DEFAULT_INGEST, help="ingest endpoint")
    f.add_argument("--source", default="rtda-py", help="feeder identity")
    f.add_argument("--batch", type=int, default=1000, help="observations per batch")
    f.add_argument("--first-seq", type=int, default=1, help="seq of the first batch")
    f.add_argument("--truth", help="nature-run file: send the truth with each window marker")
    f.add_argument("--cycles", type=int, help="feed only this many windows")
    f.add_argument("--first-cycle", type=int, default=0, help="first window fed")
    f.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for an ack")
    f.add_argument("--tries", type=int, default=10, help="attempts per batch")
    f.add_argument("--keep-going", action="store_true",
                   help="continue after a batch is refused as a whole")
    f.add_argument("--quiet", action="store_true")

    w = sub.add_parser("watch", parents=[sec], help="print one line per published Analysis")
    w.add_argument("--server", default=DEFAULT_PUBLISH, help="publish endpoint")
    w.add_argument("--count", type=int, help="exit after this many analyses")
    w.add_argument("--topic", default="rtda.summary", choices=TOPICS)
    w.add_argument("--timeout", type=float, help="exit (status 1) after this long without one")

    s = sub.add_parser("status", parents=[sec], help="print the server's status")
    s.add_argument("--server", default=DEFAULT_CONTROL, help="control endpoint")
    s.add_argument("--json", action="store_true",
                   help="as JSON (protobuf's JSON mapping of Status, as rtda status --json)")
    s.add_argument("--timeout", type=float, default=5.0)

    for verb in ("pause", "resume", "checkpoint", "set-filter", "shutdown"):
        v = sub.add_parser(verb, parents=[sec], help=f"control: {verb}")
        v.add_argument("--server", default=DEFAULT_CONTROL, help="control endpoint")
        v.add_argument("--timeout", type=float, default=5.0)
        if verb == "set-filter":
            v.add_argument("filter", choices=("letkf", "ensf", "none"))

    m = sub.add_parser("plot", help="field maps (PNG) of one cycle of an analysis archive")
    m.add_argument("--archive", required=True,
                   help="data_dir/analyses, a data_dir, or an rtda experiment archive")
    m.add_argument("--cycle", type=int, required=True)
    m.add_argument("--out", required=True, help="PNG file")
    m.add_argument("--truth", help="nature run: also map the error against it")
    m.add_argument("--title")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    a = _parser().parse_args(argv)
    delimiter = not a.no_delimiter
    try:
        if a.command == "plot":
            import matplotlib
            matplotlib.use("Agg")
            from .maps import plot_archive_cycle
            out = plot_archive_cycle(a.archive, a.cycle, a.out, a.truth, a.title)
            print(f"wrote {out}")
            return 0
        curve = curve_from_options(a.server_key, a.client_key)
        if a.command == "feed":
            log = (lambda m: None) if a.quiet else (lambda m: print(m, flush=True))
            summ = feed_file(a.obs, a.server, a.source, a.batch, a.first_seq, a.truth,
                             a.cycles, a.first_cycle, a.timeout, a.tries, delimiter,
                             stop_on_refusal=not a.keep_going, log=log, curve=curve)
            print(summ.line(), flush=True)
            if a.quiet:
                for e in summ.errors:
                    print(f"refused: {e}", file=sys.stderr)
            return 0 if summ.ok else 1
        if a.command == "watch":
            n = 0
            for an in subscribe(a.server, a.topic, a.count, a.timeout, raw=True, curve=curve):
                print(analysis_line(an), flush=True)
                n += 1
            if a.count is not None and n < a.count:
                print(f"rtda_client: only {n} of {a.count} analyses before the timeout",
                      file=sys.stderr)
                return 1
            return 0
        if a.command == "status":
            st = status(a.server, a.timeout, delimiter, curve=curve)
            print(status_json(st) if a.json else status_text(st))
            return 0
        reply = control(a.server, COMMANDS[a.command], getattr(a, "filter", ""),
                        timeout_s=a.timeout, delimiter=delimiter, curve=curve)
        if not reply.ok:
            print(f"rtda_client {a.command}: {reply.error}", file=sys.stderr)
            return 1
        print(reply.message)
        return 0
    except (TimeoutError, RuntimeError, OSError, ValueError, KeyFileError,
            zmq.ZMQError) as e:
        print(f"rtda_client: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
