#!/usr/bin/env python3
"""The cluster deployment files (deploy/slurm, deploy/systemd) checked without Slurm or systemd.

Each Slurm script runs in its dry-run mode (RTDA_DRY_RUN=1) with a fake allocation in SLURM_*
variables and prints the launch command it would run; the tests read that command and check
one rank per GPU, the CPU and GPU binding, the device and the server endpoint. The checks
that make a script fail early (no endpoint, no binary, no key, a server that does not answer)
run for real. The systemd unit goes through `systemd-analyze verify` where it exists.

    deploy_scripts_test.py [--rtda PATH] [--rtda-server PATH] [unittest options]

--rtda and --rtda-server are the built programs; the cases that need them skip without.
"""

import argparse
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SLURM = ROOT / "deploy" / "slurm"
SYSTEMD = ROOT / "deploy" / "systemd"
GPU = SLURM / "rtda-worker-gpu.sbatch"
CPU = SLURM / "rtda-worker-cpu.sbatch"
SERVER_JOB = SLURM / "rtda-server.sbatch"
SELECT_GPU = SLURM / "select-gpu.sh"
UNIT = SYSTEMD / "rtda-server.service"
EXAMPLE_CONFIG = SYSTEMD / "rtda-server.toml"
PROGRAMS = {"rtda": None, "rtda-server": None}


class Listener:
    """A TCP port that accepts connections: the server's workers endpoint, as far as the
    scripts' reachability check can tell."""

    def __enter__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        return self

    def __exit__(self, *exc):
        self.sock.close()


def closed_port():
    """A port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ScriptCase(unittest.TestCase):
    def setUp(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="rtda-deploy-test-"))
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        # A bin directory with a stand-in rtda-worker (the dry run never starts it).
        self.bin = self.tmp / "bin"
        self.bin.mkdir()
        worker = self.bin / "rtda-worker"
        worker.write_text("#!/bin/sh\necho fake rtda-worker \"$@\"\n")
        worker.chmod(0o755)
        self.keys = self.tmp / "keys"
        self.keys.mkdir()
        (self.keys / "server.key").write_text("public-key = \"fake\"\n")
        (self.keys / "worker.key_secret").write_text("secret-key = \"fake\"\n")

    def env(self, **extra):
        """A clean environment: the caller's SLURM_*/RTDA_* must not leak into a case."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "RTDA_"))}
        env.update({
            "RTDA_DRY_RUN": "1",
            "RTDA_BIN": str(self.bin),
            "RTDA_KEYS": str(self.keys),
            "RTDA_SERVER_WAIT": "1",
            "SLURM_SUBMIT_DIR": str(self.tmp),
            "HOME": str(self.tmp),
        })
        env.update({k: str(v) for k, v in extra.items()})
        return {k: v for k, v in env.items() if v is not None}

    def run_script(self, script, env, timeout=60):
        return subprocess.run(["bash", str(script)], env=env, cwd=self.tmp, capture_output=True,
                              text=True, timeout=timeout)

    def dry_run(self, script, **extra):
        """Runs a dry run that must succeed; returns (launch argv, env line, stderr)."""
        r = self.run_script(script, self.env(**extra))
        self.assertEqual(r.returncode, 0, f"{script.name} failed:\n{r.stdout}\n{r.stderr}")
        run = [line for line in r.stdout.splitlines() if line.startswith("run: ")]
        self.assertEqual(len(run), 1, r.stdout)
        env_lines = [line for line in r.stdout.splitlines() if line.startswith("env: ")]
        return shlex.split(run[0][len("run: "):]), (env_lines[0] if env_lines else ""), r.stderr

    def fails(self, script, message, **extra):
        r = self.run_script(script, self.env(**extra))
        self.assertNotEqual(r.returncode, 0, f"{script.name} should fail:\n{r.stdout}")
        self.assertIn(message, r.stderr)
        self.assertNotIn("run: ", r.stdout)  # nothing was (or would have been) launched
        return r.stderr

    def worker_args(self, argv):
        """rtda-worker's own arguments, after the launcher's and the GPU wrapper's."""
        i = next(i for i, a in enumerate(argv) if a.endswith("rtda-worker"))
        return argv[i + 1:]


GPU_JOB = dict(SLURM_JOB_ID=4242, SLURM_JOB_NUM_NODES=2, SLURM_NNODES=2,
               SLURM_GPUS_PER_NODE="gpu:8", SLURM_NTASKS_PER_NODE=8, SLURM_CPUS_PER_TASK=7)
CPU_JOB = dict(SLURM_JOB_ID=4243, SLURM_JOB_NUM_NODES=3, SLURM_NNODES=3,
               SLURM_NTASKS_PER_NODE=4, SLURM_CPUS_PER_TASK=16, SLURM_CPUS_ON_NODE=64)


class SyntaxTest(unittest.TestCase):
    SCRIPTS = [GPU, CPU, SERVER_JOB, SELECT_GPU]

    def test_scripts_are_valid_bash(self):
        for script in self.SCRIPTS:
            r = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, f"{script}: {r.stderr}")

    def test_scripts_are_shellcheck_clean(self):
        if not shutil.which("shellcheck"):
            self.skipTest("shellcheck is not installed: only bash -n was checked")
        r = subprocess.run(["shellcheck", "--shell=bash"] + [str(s) for s in self.SCRIPTS],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_scripts_are_executable(self):
        for script in self.SCRIPTS:
            self.assertTrue(os.access(script, os.X_OK), f"{script} is not executable")


class GpuWorkerJobTest(ScriptCase):
    def test_one_rank_per_gpu_bound_to_its_closest_cores(self):
        with Listener() as server:
            argv, env, _ = self.dry_run(GPU, RTDA_SERVER_ENDPOINT=f"tcp://127.0.0.1:{server.port}",
                                        **GPU_JOB)
        self.assertEqual(argv[0], "srun")
        for flag in ["--nodes=2", "--ntasks=16", "--ntasks-per-node=8", "--cpus-per-task=7",
                     "--gpus-per-task=1", "--gpu-bind=closest", "--cpu-bind=cores",
                     "--mpi=pmix", "--kill-on-bad-exit=1"]:
            self.assertIn(flag, argv)
        self.assertEqual(argv[argv.index("--ntasks=16") - 1], "--nodes=2")
        self.assertEqual(Path(next(a for a in argv if a.endswith("rtda-worker"))),
                         self.bin / "rtda-worker")
        args = self.worker_args(argv)
        self.assertEqual(args[args.index("--server") + 1], f"tcp://127.0.0.1:{server.port}")
        self.assertEqual(args[args.index("--device") + 1], "gpu")
        self.assertEqual(args[args.index("--set") + 1], "model.threads=7")
        self.assertEqual(args[args.index("--server-key") + 1], str(self.keys / "server.key"))
        self.assertEqual(args[args.index("--key") + 1], str(self.keys / "worker.key_secret"))
        for setting in ["OMP_NUM_THREADS=7", "OMP_PLACES=cores", "OMP_PROC_BIND=close"]:
            self.assertIn(setting, env.split())

    def test_ranks_scale_with_nodes(self):
        with Listener() as server:
            job = dict(GPU_JOB, SLURM_JOB_NUM_NODES=16, SLURM_NNODES=16)
            argv, _, _ = self.dry_run(GPU, RTDA_SERVER_ENDPOINT=f"tcp://127.0.0.1:{server.port}",
                                      **job)
        self.assertIn("--ntasks=128", argv)
        self.assertIn("--ntasks-per-node=8", argv)

    def test_wrapper_gives_each_rank_its_own_gcd(self):
        mask = "mask_cpu:0xfe000000000000,0xfe00000000000000,0xfe0000,0xfe000000,0xfe,0xfe00," \
               "0xfe00000000,0xfe0000000000"
        with Listener() as server:
            argv, _, _ = self.dry_run(GPU, RTDA_SERVER_ENDPOINT=f"tcp://127.0.0.1:{server.port}",
                                      RTDA_GPU_BIND="wrapper", RTDA_CPU_BIND=mask, **GPU_JOB)
        self.assertIn("--gpu-bind=none", argv)
        self.assertIn("--gpus-per-node=8", argv)
        self.assertIn(f"--cpu-bind={mask}", argv)
        self.assertNotIn("--gpu-bind=closest", argv)
        worker = next(i for i, a in enumerate(argv) if a.endswith("rtda-worker"))
        self.assertEqual(Path(argv[worker - 1]).resolve(), SELECT_GPU.resolve())

    def test_mpiexec_alternative_maps_ranks_and_cores(self):
        with Listener() as server:
            argv, _, _ = self.dry_run(GPU, RTDA_SERVER_ENDPOINT=f"tcp://127.0.0.1:{server.port}",
                                      RTDA_LAUNCHER="mpiexec", **GPU_JOB)
        self.assertEqual(argv[:3], ["mpiexec", "-n", "16"])
        self.assertEqual(argv[argv.index("--map-by") + 1], "ppr:8:node:PE=7")
        self.assertEqual(argv[argv.index("--bind-to") + 1], "core")
        worker = next(i for i, a in enumerate(argv) if a.endswith("rtda-worker"))
        self.assertEqual(Path(argv[worker - 1]).name, "select-gpu.sh")
        self.assertEqual(self.worker_args(argv)[self.worker_args(argv).index("--device") + 1],
                         "gpu")

    def test_refuses_more_or_fewer_ranks_than_gpus(self):
        self.fails(GPU, "one rank per GPU", RTDA_SERVER_ENDPOINT="tcp://127.0.0.1:1",
                   **dict(GPU_JOB, SLURM_NTASKS_PER_NODE=4))

    def test_endpoint_from_the_server_job_file(self):
        with Listener() as server:
            endpoint_file = self.tmp / "rtda-server.endpoints"
            endpoint_file.write_text("# rtda-server job 1\n"
                                     f"RTDA_SERVER_ENDPOINT=tcp://127.0.0.1:{server.port}\n")
            argv, _, err = self.dry_run(GPU, **GPU_JOB)
        args = self.worker_args(argv)
        self.assertEqual(args[args.index("--server") + 1], f"tcp://127.0.0.1:{server.port}")
        self.assertIn(str(endpoint_file), err)

    def test_config_is_passed_when_given(self):
        config = self.tmp / "group.toml"
        config.write_text("[model]\nN = 64\n")
        with Listener() as server:
            argv, _, _ = self.dry_run(GPU, RTDA_SERVER_ENDPOINT=f"tcp://127.0.0.1:{server.port}",
                                      RTDA_CONFIG=config, RTDA_WORKER_ARGS="--set a.b=1", **GPU_JOB)
        args = self.worker_args(argv)
        self.assertEqual(args[args.index("--config") + 1], str(config))
        self.assertEqual(args[-2:], ["--set", "a.b=1"])


class CpuWorkerJobTest(ScriptCase):
    def test_ranks_times_threads_bound_to_cores(self):
        with Listener() as server:
            argv, env, _ = self.dry_run(CPU, RTDA_SERVER_ENDPOINT=f"tcp://127.0.0.1:{server.port}",
                                        **CPU_JOB)
        self.assertEqual(argv[0], "srun")
        for flag in ["--nodes=3", "--ntasks=12", "--ntasks-per-node=4", "--cpus-per-task=16",
                     "--cpu-bind=cores", "--distribution=block:block", "--mpi=pmix"]:
            self.assertIn(flag, argv)
        self.assertFalse([a for a in argv if a.startswith("--gpu")], argv)
        self.assertFalse([a for a in argv if "select-gpu" in a], argv)
        args = self.worker_args(argv)
        self.assertEqual(args[args.index("--server") + 1], f"tcp://127.0.0.1:{server.port}")
        self.assertEqual(args[args.index("--device") + 1], "cpu")
        self.assertEqual(args[args.index("--set") + 1], "model.threads=16")
        self.assertIn("OMP_NUM_THREADS=16", env.split())
        self.assertIn("OMP_PROC_BIND=close", env.split())

    def test_cores_per_rank_from_the_node_when_not_given(self):
        job = dict(CPU_JOB)
        del job["SLURM_CPUS_PER_TASK"]
        with Listener() as server:
            argv, _, _ = self.dry_run(CPU, RTDA_SERVER_ENDPOINT=f"tcp://127.0.0.1:{server.port}",
                                      **job)
        self.assertIn("--cpus-per-task=16", argv)  # 64 CPUs / 4 ranks

    def test_mpiexec_alternative(self):
        with Listener() as server:
            argv, _, _ = self.dry_run(CPU, RTDA_SERVER_ENDPOINT=f"tcp://127.0.0.1:{server.port}",
                                      RTDA_LAUNCHER="mpiexec", RTDA_MPI="", **CPU_JOB)
        self.assertEqual(argv[:3], ["mpiexec", "-n", "12"])
        self.assertEqual(argv[argv.index("--map-by") + 1], "ppr:4:node:PE=16")

    def test_without_curve_no_keys_are_passed(self):
        with Listener() as server:
            argv, _, _ = self.dry_run(CPU, RTDA_SERVER_ENDPOINT=f"tcp://127.0.0.1:{server.port}",
                                      RTDA_CURVE=0, RTDA_KEYS=self.tmp / "none", **CPU_JOB)
        self.assertNotIn("--server-key", argv)
        self.assertNotIn("--key", argv)


class FailEarlyTest(ScriptCase):
    """Both worker jobs stop before launching anything, with a message that says what to fix."""

    def each(self, message, **extra):
        for script, job in ((GPU, GPU_JOB), (CPU, CPU_JOB)):
            with self.subTest(script=script.name):
                self.fails(script, message, **dict(job, **extra))

    def test_no_endpoint(self):
        self.each("RTDA_SERVER_ENDPOINT")

    def test_bind_address_as_endpoint(self):
        self.each("bind address", RTDA_SERVER_ENDPOINT="tcp://*:5563")

    def test_missing_binary(self):
        self.each("RTDA_BIN", RTDA_SERVER_ENDPOINT="tcp://127.0.0.1:1",
                  RTDA_BIN=self.tmp / "nowhere")

    def test_missing_config(self):
        self.each("RTDA_CONFIG", RTDA_SERVER_ENDPOINT="tcp://127.0.0.1:1",
                  RTDA_CONFIG=self.tmp / "missing.toml")

    def test_missing_server_key(self):
        self.each("server public key", RTDA_SERVER_ENDPOINT="tcp://127.0.0.1:1",
                  RTDA_KEYS=self.tmp / "nokeys")

    def test_server_not_reachable(self):
        self.each("not reachable", RTDA_SERVER_ENDPOINT=f"tcp://127.0.0.1:{closed_port()}")

    def test_outside_slurm_without_dry_run(self):
        for script in (GPU, CPU):
            with self.subTest(script=script.name):
                self.fails(script, "not inside a Slurm job", RTDA_DRY_RUN=None,
                           RTDA_SERVER_ENDPOINT="tcp://127.0.0.1:1")


class SelectGpuTest(unittest.TestCase):
    def device(self, **env):
        full = {k: v for k, v in os.environ.items()
                if k not in ("ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "SLURM_LOCALID",
                             "OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "PMI_LOCAL_RANK",
                             "RTDA_GPU_MAP", "RTDA_GPUS_PER_NODE")}
        full.update({k: str(v) for k, v in env.items()})
        r = subprocess.run([str(SELECT_GPU), "sh", "-c", "echo ${ROCR_VISIBLE_DEVICES}"],
                           env=full, capture_output=True, text=True)
        return r.returncode, r.stdout.strip(), r.stderr

    def test_each_local_rank_sees_one_device(self):
        for rank in range(8):
            self.assertEqual(self.device(SLURM_LOCALID=rank)[1], str(rank))

    def test_open_mpi_local_rank_first_as_rtda_worker_reads_it(self):
        self.assertEqual(self.device(OMPI_COMM_WORLD_LOCAL_RANK=5, SLURM_LOCALID=0)[1], "5")

    def test_picks_among_the_devices_the_launcher_left(self):
        self.assertEqual(self.device(SLURM_LOCALID=3, ROCR_VISIBLE_DEVICES="4,5")[1], "5")

    def test_map_pairs_ranks_with_gcds(self):
        rc, out, _ = self.device(SLURM_LOCALID=0, RTDA_GPU_MAP="4,5,2,3,6,7,0,1")
        self.assertEqual((rc, out), (0, "4"))

    def test_without_a_local_rank_it_refuses(self):
        rc, _, err = self.device()
        self.assertEqual(rc, 2)
        self.assertIn("srun or mpiexec", err)


class ServerJobTest(ScriptCase):
    def setUp(self):
        super().setUp()
        self.config = self.tmp / "server.toml"
        self.config.write_text(f'[server]\ndata_dir = "{self.tmp / "data"}"\n')

    def link_programs(self):
        for name, path in PROGRAMS.items():
            if path is None:
                self.skipTest(f"needs the built {name} (--{name})")
            (self.bin / name).symlink_to(path)

    def test_an_insecure_bind_off_loopback_fails_naming_server_insecure(self):
        self.link_programs()
        r = self.run_script(SERVER_JOB, self.env(RTDA_CONFIG=self.config, RTDA_BIND="hsn0",
                                                 SLURM_JOB_ID=7))
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("server.insecure", r.stderr)

    def test_binds_the_interface_and_advertises_the_host(self):
        self.link_programs()
        self.config.write_text(f'[server]\ndata_dir = "{self.tmp / "data"}"\ninsecure = true\n')
        r = self.run_script(SERVER_JOB, self.env(RTDA_CONFIG=self.config, RTDA_BIND="hsn0",
                                                 RTDA_ADVERTISE_HOST="svc01", SLURM_JOB_ID=7))
        self.assertEqual(r.returncode, 0, r.stderr)
        argv = shlex.split(next(line for line in r.stdout.splitlines()
                                if line.startswith("run: "))[len("run: "):])
        self.assertEqual(Path(argv[0]).name, "rtda-server")
        self.assertEqual(argv[argv.index("--config") + 1], str(self.config))
        for endpoint in ["server.ingest=tcp://hsn0:5560", "server.publish=tcp://hsn0:5561",
                         "server.control=tcp://hsn0:5562", "server.workers=tcp://hsn0:5563",
                         "server.metrics=tcp://127.0.0.1:9464"]:
            self.assertIn(endpoint, argv)
        self.assertIn("RTDA_SERVER_ENDPOINT=tcp://svc01:5563", r.stdout.splitlines())
        self.assertIn("RTDA_CONTROL_ENDPOINT=tcp://svc01:5562", r.stdout.splitlines())
        self.assertIn("security.curve is off", r.stderr)

    def test_a_bad_configuration_fails_before_the_job_starts_the_server(self):
        self.link_programs()
        self.config.write_text("[server]\nno_such_key = 1\n")
        r = self.run_script(SERVER_JOB, self.env(RTDA_CONFIG=self.config))
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("no_such_key", r.stderr)

    def test_missing_config(self):
        self.fails(SERVER_JOB, "RTDA_CONFIG")
        self.fails(SERVER_JOB, "no such readable file", RTDA_CONFIG=self.tmp / "missing.toml")

    def test_runs_writes_endpoints_and_stops_cleanly_on_term(self):
        self.link_programs()
        base = free_port_block(4)
        env = self.env(RTDA_DRY_RUN=None, RTDA_CONFIG=self.config, RTDA_BIND="127.0.0.1",
                       RTDA_ADVERTISE_HOST="127.0.0.1", RTDA_PORT_BASE=base,
                       RTDA_METRICS_PORT="", SLURM_JOB_ID=99)
        endpoint_file = self.tmp / "rtda-server.endpoints"
        # Own process group: on failure the whole job (bash and the server holding the pipe)
        # is killed, so the test ends instead of waiting for the pipe to close.
        job = subprocess.Popen(["bash", str(SERVER_JOB)], env=env, cwd=self.tmp,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
        try:
            deadline = time.monotonic() + 20
            while not endpoint_file.exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            self.assertTrue(endpoint_file.exists(), "no endpoint file")
            self.assertIn(f"RTDA_SERVER_ENDPOINT=tcp://127.0.0.1:{base + 3}",
                          endpoint_file.read_text().splitlines())
            # The job writes the file as it starts the server, which listens a moment later
            # (longer on a loaded machine): wait for it.
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", base + 3), timeout=10):
                        break  # the server listens where the file says
                except ConnectionRefusedError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            # scancel --batch --signal=HUP: passed on to the server, which goes on serving.
            job.send_signal(signal.SIGHUP)
            time.sleep(1.0)
            with socket.create_connection(("127.0.0.1", base + 3), timeout=10):
                pass
            job.send_signal(signal.SIGTERM)  # what Slurm sends before the time limit
            out, _ = job.communicate(timeout=30)
        finally:
            if job.poll() is None:
                os.killpg(job.pid, signal.SIGKILL)
                job.communicate(timeout=30)
        self.assertEqual(job.returncode, 0, out)
        self.assertIn("stopping", out)
        self.assertIn("SIGHUP", out)
        self.assertFalse(endpoint_file.exists(), "the endpoint file outlived the server")


def free_port_block(n):
    """A base port with the n ports from it free right now."""
    for _ in range(50):
        base = closed_port()
        if base + n > 65535:
            continue
        socks = []
        try:
            for p in range(base, base + n):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no block of free ports")


class SystemdUnitTest(unittest.TestCase):
    def unit(self):
        return UNIT.read_text()

    def test_systemd_analyze_verify(self):
        if not shutil.which("systemd-analyze"):
            self.skipTest("systemd-analyze is not installed: the unit was not verified")
        with tempfile.TemporaryDirectory() as tmp:
            # verify checks that ExecStart= exists: point it at a real program here.
            program = PROGRAMS["rtda-server"] or shutil.which("true")
            text = self.unit().replace("/opt/rtda/bin/rtda-server", program)
            unit = Path(tmp) / "rtda-server.service"
            unit.write_text(text)
            r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                               text=True, timeout=90)
        # Complaints about the unit name it; anything else comes from the host's own units.
        complaints = [line for line in (r.stdout + r.stderr).splitlines()
                      if "rtda-server" in line]
        self.assertEqual(complaints, [])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_runs_as_a_dedicated_user_with_hardening(self):
        settings = {}
        for line in self.unit().splitlines():
            if "=" in line and not line.startswith("#"):
                key, value = line.split("=", 1)
                settings.setdefault(key.strip(), []).append(value.strip())
        expected = {"User": "rtda", "NoNewPrivileges": "yes", "ProtectSystem": "strict",
                    "PrivateTmp": "yes", "Restart": "on-failure", "KillSignal": "SIGTERM",
                    "StateDirectory": "rtda", "WorkingDirectory": "/var/lib/rtda"}
        for key, value in expected.items():
            self.assertEqual(settings.get(key), [value], key)
        self.assertGreaterEqual(int(settings["TimeoutStopSec"][0]), 60)
        self.assertGreaterEqual(int(settings["LimitNOFILE"][0]), 4096)
        self.assertTrue(settings["ExecStart"][0].startswith("/opt/rtda/bin/rtda-server --config"))

    def test_notify_readiness_watchdog_reload_and_exit_codes(self):
        settings = {}
        for line in self.unit().splitlines():
            if "=" in line and not line.startswith("#"):
                key, value = line.split("=", 1)
                settings.setdefault(key.strip(), []).append(value.strip())
        self.assertEqual(settings.get("Type"), ["notify"])
        self.assertEqual(settings.get("NotifyAccess"), ["main"])
        self.assertRegex(settings["WatchdogSec"][0], r"^\d+s$")
        self.assertEqual(settings.get("ExecReload"), ["/bin/kill -HUP $MAINPID"])
        # A damaged log (65) and a refused configuration (78) are not restarted.
        self.assertEqual(settings.get("RestartPreventExitStatus"), ["65 78"])

    def test_example_data_dir_is_writable_under_the_unit(self):
        data_dir = re.search(r'^data_dir\s*=\s*"([^"]+)"', EXAMPLE_CONFIG.read_text(), re.M)
        self.assertIsNotNone(data_dir)
        writable = re.findall(r"^ReadWritePaths=(.+)$", self.unit(), re.M)
        paths = [p.lstrip("-") for line in writable for p in line.split()]
        self.assertTrue(any(data_dir.group(1).startswith(p.rstrip("/") + "/") for p in paths),
                        f"{data_dir.group(1)} is not under ReadWritePaths {paths}")

    def test_example_server_config_loads_with_curve_on(self):
        if PROGRAMS["rtda"] is None:
            self.skipTest("needs the built rtda (--rtda)")
        r = subprocess.run([PROGRAMS["rtda"], "config", "--config", str(EXAMPLE_CONFIG)],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"(?m)^curve = true$")
        self.assertRegex(r.stdout, r'(?m)^workers = "tcp://')


if __name__ == "__main__":
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--rtda")
    parser.add_argument("--rtda-server")
    known, rest = parser.parse_known_args()
    PROGRAMS["rtda"] = os.path.abspath(known.rtda) if known.rtda else None
    PROGRAMS["rtda-server"] = os.path.abspath(known.rtda_server) if known.rtda_server else None
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)
