#!/usr/bin/env python3
"""The Python side of bench/gpu_check.sh (docs/gpu.md, "The GPU check").

  gpu_check.py list-tests CTEST_JSON          program<TAB>arguments<TAB>ranks, one per run
  gpu_check.py junit XML KERNELS PROGRAM RANKS SECONDS   one parity.csv row from a GoogleTest XML
  gpu_check.py compare CASE CPU.h5 GPU.h5 TOL [yes]  one experiments.csv row and its verdict
                                              (yes: also the residency bound of docs/gpu.md)
  gpu_check.py report OUTDIR                  report.txt from the CSVs and env.txt in OUTDIR

Only the standard library, numpy and h5py (both on the GPU machine's Python).
"""
import csv
import json
import os
import sys
import xml.etree.ElementTree as ET

LAUNCHERS = ("mpiexec", "mpirun")

# Datasheet peaks (vendor figures, SXM parts): HBM bandwidth in GB/s, FP64 and FP32 vector
# rates in GFLOP/s. Leads for the report; the measured copy bandwidth is the other ceiling.
PEAKS = {
    "H200": (4800.0, 34000.0, 67000.0),
    "H100": (3350.0, 34000.0, 67000.0),
    "GH200": (4000.0, 34000.0, 67000.0),
    "A100": (2039.0, 9700.0, 19500.0),
    "MI250X": (1638.0, 23950.0, 23950.0),  # one GCD
}


def list_tests(path):
    rows = []
    for t in json.load(open(path))["tests"]:
        cmd = t.get("command") or []
        launcher = [i for i, c in enumerate(cmd) if os.path.basename(c) in LAUNCHERS]
        prog = next((i for i, c in enumerate(cmd) if "/" in c and i not in launcher), None)
        if prog is None:
            continue
        if launcher:
            ranks = cmd[cmd.index("-n") + 1] if "-n" in cmd else "1"
            row = (os.path.basename(cmd[prog]), " ".join(cmd[prog + 1:]), ranks)
        else:  # one process runs all of a program's cases; its XML report names each
            row = (os.path.basename(cmd[prog]), "", "0")
        if row not in rows:
            rows.append(row)
    for r in rows:
        print("\t".join(r))


def junit(xml_path, kernels, program, ranks, seconds):
    tests = failed = skipped = 0
    first_failure = ""
    skip_reason = ""
    try:
        root = ET.parse(xml_path).getroot()
        for case in root.iter("testcase"):
            tests += 1
            fail = case.find("failure")
            skip = case.find("skipped")
            if fail is not None:
                failed += 1
                if not first_failure:
                    first_failure = case.get("classname", "") + "." + case.get("name", "")
            elif skip is not None or case.get("result") == "skipped" or case.get("status") == "notrun":
                skipped += 1
                if not skip_reason:
                    skip_reason = (skip.get("message", "") if skip is not None else "").strip()
    except (OSError, ET.ParseError) as e:
        first_failure = f"no report ({e.__class__.__name__})"
        failed = max(failed, 1)
    note = first_failure or (skip_reason.splitlines()[-1][:160] if skip_reason else "")
    w = csv.writer(sys.stdout)
    w.writerow([kernels, program, ranks, tests, tests - failed - skipped, failed, skipped, seconds, note])


def ensemble_bytes(f):
    """One copy of the ensemble in bytes: members x state x 8, from the archive's config."""
    import numpy as np

    try:
        import tomllib
    except ImportError:  # Python < 3.11
        return 0
    cfg = tomllib.loads(f.attrs["rtda_config"].decode() if isinstance(f.attrs["rtda_config"], bytes)
                        else str(f.attrs["rtda_config"]))
    members = int(cfg.get("ensemble", {}).get("members", 0))
    return members * int(np.prod(f["mean"].shape[1:])) * 8


def compare(case, cpu_path, gpu_path, tol, residency="no"):
    """Analysis means of two archives of the same experiment; with residency=yes also the
    promise of docs/gpu.md, "Residency": after the first cycle (which uploads the initial
    ensemble) a cycle moves less than one copy of the ensemble between host and device."""
    import h5py
    import numpy as np

    tol = float(tol)
    with h5py.File(cpu_path, "r") as c, h5py.File(gpu_path, "r") as g:
        mc, mg = c["mean"][...], g["mean"][...]
        if mc.shape != mg.shape:
            print(f"{case},{mc.shape[0]},shape {mc.shape} vs {mg.shape},{tol:.0e},,,,,FAIL")
            return 1
        scale = np.maximum(np.abs(mc).reshape(mc.shape[0], -1).max(axis=1), 1e-300)
        rel = np.abs(mg - mc).reshape(mc.shape[0], -1).max(axis=1) / scale
        rc, rg = c["rmse_analysis"][...], g["rmse_analysis"][...]
        moved = g["device_host_bytes"][...] if "device_host_bytes" in g else None
        one_copy = ensemble_bytes(g)
    worst = float(rel.max())
    rmse_gap = float(np.max(np.abs(rg - rc) / np.maximum(rc, 1e-300)))
    ok = worst <= tol
    bytes_per_cycle = ""
    if moved is not None and len(moved) > 1:
        steady = float(np.max(moved[1:]))
        bytes_per_cycle = f"{steady:.0f} (ensemble {one_copy})"
        if residency == "yes" and one_copy and steady >= one_copy:
            ok = False
    elif residency == "yes" and os.environ.get("RTDA_GPU_CHECK_DRY") != "1":
        ok = False  # a device run must record what crossed
        bytes_per_cycle = "missing"
    verdict = "PASS" if ok else "FAIL"
    print(
        f"{case},{mc.shape[0]},{worst:.3e},{tol:.0e},{rmse_gap:.3e},"
        f"{float(rc.mean()):.6g},{float(rg.mean()):.6g},{bytes_per_cycle},{verdict}"
    )
    return 0 if ok else 1


def read_csv(path):
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def peaks_for(gpu_name):
    for key, value in PEAKS.items():
        if key in gpu_name:
            return key, value
    return None, None


def report(outdir):
    env = open(os.path.join(outdir, "env.txt")).read() if os.path.exists(os.path.join(outdir, "env.txt")) else ""
    gpu_name = ""
    for line in env.splitlines():
        if line.startswith("gpu:"):
            gpu_name = line.split(":", 1)[1].strip()
    lines = ["rtda GPU check", "=" * 14, "", env.strip(), ""]

    parity = read_csv(os.path.join(outdir, "parity.csv"))
    lines.append("1. Parity tests (each device stage against its CPU oracle; docs/gpu.md tolerances)")
    for r in parity:
        lines.append(
            f"  [{r['kernels']:>7}] {r['program']:<22} ranks {r['ranks']:>2}: {r['passed']:>3} passed, "
            f"{r['failed']} failed, {r['skipped']} skipped ({r['seconds']} s) {r['note']}"
        )
    lines.append("")

    exps = read_csv(os.path.join(outdir, "experiments.csv"))
    lines.append("2. Experiments, --device gpu against --device cpu")
    for r in exps:
        lines.append(
            f"  {r['case']:<10} {r['cycles']} cycles: max |gpu - cpu| / max |mean| = {r['max_rel_diff']} "
            f"(tolerance {r['tolerance']}), analysis RMSE cpu {r['rmse_cpu']} gpu {r['rmse_gpu']}, "
            f"device_host_bytes per cycle {r['device_host_bytes'] or '-'}: {r['verdict']}"
        )
    lines.append("")

    timings = read_csv(os.path.join(outdir, "timings.csv"))
    key, peak = peaks_for(gpu_name)
    copy_gbs = max((float(r["gb_per_s"] or 0) for r in timings if r["case"] == "copy"), default=0.0)
    lines.append("3. Timings (median of the repeats)")
    if peak:
        lines.append(
            f"  ceilings: datasheet {key}: {peak[0]:.0f} GB/s, FP64 {peak[1] / 1000:.0f} TFLOP/s, "
            f"FP32 {peak[2] / 1000:.0f} TFLOP/s; measured device copy {copy_gbs:.0f} GB/s"
        )
    else:
        lines.append(f"  ceilings: measured device copy {copy_gbs:.0f} GB/s (no datasheet entry for '{gpu_name}')")
    for r in timings:
        extra = ""
        gbs = float(r["gb_per_s"] or 0)
        gfs = float(r["gflop_per_s"] or 0)
        if gbs > 0:
            extra += f" {gbs:.0f} GB/s"
            if peak:
                extra += f" ({100 * gbs / peak[0]:.1f}% of peak"
                extra += f", {100 * gbs / copy_gbs:.0f}% of copy)" if copy_gbs > 0 else ")"
        if gfs > 0:
            extra += f" {gfs:.0f} GFLOP/s"
            if peak:
                extra += f" ({100 * gfs / peak[1]:.1f}% of FP64 peak)"
        lines.append(
            f"  {r['case']:<8} {r['entry']:<8} {r['device']:<4} N={r['n']:>4} k={r['members']:>3} "
            f"p={r['observations']:>7}: {r['median_ms']:>9} ms (min {r['min_ms']}){extra} {r['note']}"
        )
    lines.append("")
    text = "\n".join(lines) + "\n"
    open(os.path.join(outdir, "report.txt"), "w").write(text)
    sys.stdout.write(text)


def main(argv):
    if len(argv) < 2:
        print(__doc__)
        return 2
    cmd = argv[1]
    if cmd == "list-tests":
        list_tests(argv[2])
    elif cmd == "junit":
        junit(*argv[2:7])
    elif cmd == "compare":
        return compare(*argv[2:7])
    elif cmd == "report":
        report(argv[2])
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
