"""What the service test drivers share: failures, checks that print what they verified, and
the tail of a process log for failure messages."""
import os
import signal
import subprocess
import sys
import time
import traceback
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


def add_service_arguments(ap, time_limit):
    """The command line the drivers take: the binaries and limits. The drivers import the
    installed Python client (rtda_client: run them with the interpreter of a venv where
    client/python is installed, tests/python/make_venv.sh)."""
    ap.add_argument("--rtda", required=True, help="the rtda CLI")
    ap.add_argument("--server-bin", required=True, help="rtda-server")
    ap.add_argument("--worker-bin", required=True, help="rtda-worker")
    ap.add_argument("--mpiexec", default="mpiexec")
    ap.add_argument("--time-limit", type=float, default=time_limit,
                    help="seconds for the whole run")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directories")


def run_cases(names, run_one, time_limit, label="", skip=()):
    """Runs run_one(name) for each name within `time_limit` seconds in all, printing one
    PASS/FAIL/SKIP line per case and a summary; True when every case passed or skipped."""
    start = time.monotonic()

    def on_alarm(signum, frame):
        raise TimeLimit(f"the test ran past its time limit of {time_limit:g} s")
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(int(time_limit))
    results = []
    name, t_case = "-", start
    try:
        for name in names:
            print(f"== {name}{label}", flush=True)
            t_case = time.monotonic()
            try:
                run_one(name)
                status = "PASS"
            except skip as e:
                status = f"SKIP ({e})"
            except (Failure, TimeoutError, RuntimeError, subprocess.SubprocessError,
                    OSError) as e:
                print(f"FAIL: {name}: {e}", file=sys.stderr, flush=True)
                if not isinstance(e, Failure):
                    traceback.print_exc()
                status = "FAIL"
            results.append((name, status, time.monotonic() - t_case))
            print(f"== {name}: {status} ({results[-1][2]:.1f} s)", flush=True)
    except TimeLimit as e:
        print(f"FAIL: {e}", file=sys.stderr, flush=True)
        results.append((f"{name} (time limit)", "FAIL", time.monotonic() - t_case))
    finally:
        signal.alarm(0)
    print(f"\nsummary{label}:")
    for name, status, secs in results:
        print(f"  {name:<22} {status:<6} {secs:6.1f} s")
    ok = bool(results) and all(not s.startswith("FAIL") for _, s, _ in results)
    print(f"{'PASS' if ok else 'FAIL'} ({time.monotonic() - start:.1f} s)", flush=True)
    return ok


def session_pids(sid):
    """The live processes of session `sid` (zombies excluded). Every service process is started
    with start_new_session, so its session id is its pid; mpiexec (Open MPI) puts each rank in
    a process group of its own, but in mpiexec's session."""
    try:
        out = subprocess.run(["ps", "-e", "-o", "pid=,sid=,stat="], capture_output=True,
                             text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    pids = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1] == str(sid) and not parts[2].startswith("Z"):
            pids.append(int(parts[0]))
    return pids


def kill_session(sid, sig=signal.SIGKILL):
    """Sends `sig` to every process of session `sid` (ours: started with start_new_session)."""
    for pid in session_pids(sid):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
