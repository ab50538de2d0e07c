"""A small service on this machine, for notebooks, examples and tests: rtda-server and a
worker group (mpiexec -n R rtda-worker) with ipc:// endpoints in a directory of their own,
started and stopped from Python.

    with LocalService(bin_dir="build", config={"model": {"preset": "N32"}, ...}) as svc:
        svc.ingest, svc.publish, svc.control   # the endpoints

Each process runs in a session of its own; stop() asks the server to shut down (which stops
the worker group), and kills what is still running after `grace_s`.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Optional

ENDPOINTS = ("ingest", "publish", "control", "workers")


def find_program(name: str, bin_dir=None) -> str:
    """`name` under bin_dir (a build tree: client/, server/, worker/ are searched too), else
    on PATH; FileNotFoundError naming where it looked."""
    looked = []
    if bin_dir:
        b = Path(bin_dir)
        for d in (b, b / "client", b / "server", b / "worker", b / "bin"):
            p = d / name
            looked.append(str(p))
            if p.is_file() and os.access(p, os.X_OK):
                return str(p.resolve())
    found = shutil.which(name)
    if found:
        return found
    raise FileNotFoundError(f"{name}: not found (looked in {', '.join(looked) or '-'} and "
                            "PATH; build rtda or pass bin_dir)")


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def toml_text(config: dict) -> str:
    """{section: {key: value}} as TOML."""
    lines = []
    for section, keys in config.items():
        lines.append(f"[{section}]")
        lines.extend(f"{k} = {toml_value(v)}" for k, v in keys.items())
        lines.append("")
    return "\n".join(lines)


def run_rtda(args, bin_dir=None, timeout_s: float = 300, env=None) -> str:
    """Runs the rtda CLI with `args`; returns its standard output, raises RuntimeError with
    its output when it fails."""
    cmd = [find_program("rtda", bin_dir)] + [str(a) for a in args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {r.returncode}:\n{r.stdout}{r.stderr}")
    return r.stdout


class LocalService:
    """rtda-server plus a worker group of `ranks` ranks on ipc:// endpoints under `workdir`
    (a fresh temporary directory by default, removed by stop() unless keep=True).
    `config` is {section: {key: value}}; the [server] endpoints and data_dir are set here."""

    def __init__(self, config: dict, bin_dir=None, ranks: int = 1,
                 workdir: Optional[str] = None, keep: bool = False, mpiexec: str = "mpiexec",
                 start_timeout_s: float = 60.0):
        self.bin_dir = bin_dir
        self.ranks = ranks
        self.keep = keep or workdir is not None
        self.dir = Path(workdir or tempfile.mkdtemp(prefix="rtda-local-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.mpiexec = mpiexec
        self.start_timeout_s = start_timeout_s
        self.endpoints = {k: f"ipc://{self.dir}/{k}.sock" for k in ENDPOINTS}
        cfg = {s: dict(v) for s, v in config.items()}
        server = cfg.setdefault("server", {})
        server.update({k: self.endpoints[k] for k in ENDPOINTS})
        server.setdefault("data_dir", str(self.dir / "data"))
        self.config = cfg
        self.config_path = self.dir / "service.toml"
        self.config_path.write_text(toml_text(cfg))
        self.env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1",
                        OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
                        OMPI_MCA_rmaps_base_oversubscribe="1")
        self.server = self.worker = None

    ingest = property(lambda self: self.endpoints["ingest"])
    publish = property(lambda self: self.endpoints["publish"])
    control = property(lambda self: self.endpoints["control"])
    data_dir = property(lambda self: Path(self.config["server"]["data_dir"]))

    def _spawn(self, cmd, log_name):
        log = open(self.dir / log_name, "w")
        try:
            return subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True, cwd=self.dir)
        finally:
            log.close()

    def log(self, which: str = "server") -> str:
        p = self.dir / f"{which}.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def start(self) -> "LocalService":
        from .control import status
        # Also stopped when the interpreter exits (a notebook kernel shut down, a script that
        # raised before stop()): nothing is left running.
        atexit.register(self.stop)
        self.server = self._spawn([find_program("rtda-server", self.bin_dir), "--config",
                                   str(self.config_path)], "server.log")
        deadline = time.monotonic() + self.start_timeout_s
        st = None
        while st is None or not st.workers.connected:
            if self.server.poll() is not None:
                raise RuntimeError(f"rtda-server exited {self.server.returncode}:\n"
                                   f"{self.log('server')[-3000:]}")
            if self.worker is not None and self.worker.poll() is not None:
                raise RuntimeError(f"the worker group exited {self.worker.returncode}:\n"
                                   f"{self.log('worker')[-3000:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"the service did not come up within "
                                   f"{self.start_timeout_s:g} s")
            try:
                st = status(self.control, timeout_s=1.0)
            except TimeoutError:
                continue
            if self.worker is None:
                self.worker = self._spawn(
                    [self.mpiexec, "-n", str(self.ranks), "--oversubscribe",
                     find_program("rtda-worker", self.bin_dir), "--server",
                     self.endpoints["workers"]], "worker.log")
            if not st.workers.connected:
                time.sleep(0.2)
        return self

    def stop(self, grace_s: float = 15.0) -> None:
        """Shuts the service down (COMMAND_SHUTDOWN), then kills what still runs."""
        from .control import control
        from .wire import pb
        if self.server is not None and self.server.poll() is None:
            try:
                control(self.control, pb.COMMAND_SHUTDOWN, timeout_s=3.0)
            except (TimeoutError, RuntimeError):
                pass
        deadline = time.monotonic() + grace_s
        for p in (self.server, self.worker):
            while p is not None and p.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
        for p in (self.worker, self.server):
            if p is not None and p.poll() is None:
                for sig in (signal.SIGTERM, signal.SIGKILL):
                    try:
                        os.killpg(p.pid, sig)
                    except ProcessLookupError:
                        break
                    try:
                        p.wait(timeout=3.0)
                        break
                    except subprocess.TimeoutExpired:
                        continue
        atexit.unregister(self.stop)
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *a):
        self.stop()
