"""What the service test drivers share: failures, checks that print what they verified, and
the tail of a process log for failure messages."""
from pathlib import Path


class Failure(Exception):
    pass


class TimeLimit(Exception):
    pass


def check(cond, what, indent=""):
    if not cond:
        raise Failure(what)
    print(f"{indent}ok: {what}", flush=True)


def log_tail(path, n=40):
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return f"({path}: not readable)"
    return "\n".join(lines[-n:])


def add_service_arguments(ap, client_dir, time_limit):
    """The command line both drivers take: the binaries, the generated proto module, limits."""
    ap.add_argument("--rtda", required=True, help="the rtda CLI")
    ap.add_argument("--server-bin", required=True, help="rtda-server")
    ap.add_argument("--worker-bin", required=True, help="rtda-worker")
    ap.add_argument("--proto-dir", required=True, help="directory holding rtda_pb2.py")
    ap.add_argument("--mpiexec", default="mpiexec")
    ap.add_argument("--client-dir", default=str(client_dir), help="where rtda_client.py is")
    ap.add_argument("--time-limit", type=float, default=time_limit,
                    help="seconds for the whole run")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directories")
