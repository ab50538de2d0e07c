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
