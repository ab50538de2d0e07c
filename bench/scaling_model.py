#!/usr/bin/env python3
"""The scaling model of docs/scaling.md: time per cycle T(N, K, R) from measured
per-rank costs and message counts/volumes read off the code. Plain Python, no dependencies.

    python3 bench/scaling_model.py            # every table of docs/scaling.md, Markdown
    python3 bench/scaling_model.py --check    # the 1- vs 2-rank prediction for this machine

Constants marked [measured] come from bench/scaling_inputs (bench/RESULTS.md, "Scaling
inputs"), median CPU time of one core; constants marked [assumed] are the sourced
assumptions of docs/scaling.md §3 (no GPU was available to measure them).
"""
import math
import sys

# ---------------------------------------------------------------- measured (this machine, 1 core)
SQG_STEP = {64: 0.885e-3, 128: 4.47e-3, 256: 20.5e-3}  # s per member RK4 step [measured]
DT = {64: 1200.0, 128: 600.0, 256: 90.0, 512: 90.0, 1024: 40.0}  # sqg_params.cpp presets
VIT_MEMBER = {64: 28.9e-3, 128: 218e-3}  # s per member forward, default ViT [measured]
VIT_GFLOP = lambda n: 9.93e-5 * n**2 + 8.0e-9 * n**4  # fit to 0.541 (64), 3.775 (128) GFLOP
C_ENSF = 3.2e-9      # s per member x element x pseudo-time step, paper mode [measured]
C_ENSF_FIX = 12e-9   # s per member x element, once per analysis (setup, output) [measured]
ENSF_STD = (8.0e-9, 0.83e-9)  # standard mode: (a + b K) s per member x element x step [measured]
LETKF_P, LETKF_PK2, LETKF_K2 = 0.0288e-6, 1.03e-10, 0.0687e-6  # s per column, fit [measured]
P_LOC = {64: 298.0, 128: 1242.0}  # local observations per element at L_h = 2200 km [measured]
C_H = 7.9e-9         # s per member x observation, h(x) incl. the local copy [measured]
C_OBSSPACE = 30e-9   # s per observation, ObservationSpace built each cycle [measured]
C_TR = 1.3e-9        # s per value packed/unpacked by one transpose on one rank [measured]
C_MS = 0.95e-9       # s per member x element, mean and spread [measured]
C_DIAG = 1.6e-9      # s per member x observation, rank 0's innovation statistics [measured]
HOST_BW = 16e9       # B/s, one core's triad bandwidth [measured]
# shared-memory MPI between the 2 ranks of this machine (Open MPI vader) [measured]
ALPHA_SHM, BETA_SHM = 0.39e-6, 1 / 6.2e9
# the worker <-> server link of the service (RESULTS.md "Cycle latency") [measured]
LINK_FIXED, LINK_PER_OBS, LINK_BW = 2.0e-3, 0.17e-6, 2.0e9

# ---------------------------------------------------------------- assumed (Frontier, one GCD/rank)
HBM_BW = 1.6e12          # B/s per MI250X GCD (AMD spec 3.2 TB/s per MI250X, 2 GCDs)
GPU_BW_RATIO = HBM_BW / HOST_BW  # 100: memory-bound kernels scale by bandwidth
SC_ANCHOR = 0.36         # s, [SC] EnSF per cycle, 1e6 state variables per GPU
SC_K, SC_S = 20, 500     # assumed members and pseudo-time steps behind the anchor
C_ENSF_GPU = SC_ANCHOR / (SC_K * 1e6 * SC_S)  # 36 ps: calibrated to [SC]
TAU_STEP_GPU = 10e-6     # s per pseudo-time step: kernel launches + stopping-rule readback
LETKF_GPU_SPEEDUP = 250  # LETKF is FP64 compute-bound: ~10 % of 23.9 TFLOP/s vs ~10 GFLOP/s here
VIT_GPU_FLOPS = 37.8e15 / 1024  # [SC] ViT training rate per GPU (mixed precision)
VIT_GPU_MIN = 2e-3       # s per forecast batch: launch-bound floor
H2D_BW = 36e9            # B/s host <-> GCD (Frontier: Infinity Fabric CPU-GPU link)
HOST_CORES = 7           # Frontier: 64 cores per node, 8 GCDs (one core per GCD reserved)
ALPHA_NET, BETA_NET = 3e-6, 1 / 12.5e9  # Slingshot-11: 25 GB/s per NIC, 2 GCDs per NIC


def steps_per_cycle(n):
    return round(12 * 3600 / DT[n])


def sqg_step(n):
    """One member's RK4 step; above N = 256 scaled as M^2 log M (M = 3N/2) from N = 256."""
    if n in SQG_STEP:
        return SQG_STEP[n]
    m, m0 = 1.5 * n, 384.0
    return SQG_STEP[256] * (m / m0) ** 2 * math.log2(m) / math.log2(m0)


def sqg_member_cycle(n):
    return steps_per_cycle(n) * sqg_step(n)


def p_loc(n):
    return P_LOC.get(n, P_LOC[128] * (n / 128) ** 2)


def letkf_column(k, n):
    """Seconds per grid column (2 elements); the k^2 term turns k^3 above k = 40 (eigensolver)."""
    p = p_loc(n)
    return LETKF_P * p + LETKF_PK2 * p * k * k + LETKF_K2 * k * k * max(1.0, k / 40)


def allreduce(nbytes, r, alpha, beta):
    if r == 1:
        return 0.0
    return math.ceil(math.log2(r)) * alpha + 2 * beta * nbytes * (r - 1) / r


def terms(n, k, r, filt="ensf", steps=300, gpu=False, forecast="sqg", service=False, fixed=False,
          on_device=False):
    """Per-cycle terms (seconds) on rank 0, which is on every critical path.

    fixed=True models the design changes of docs/scaling.md §6 (EnSF only): h(x) and the
    innovation statistics computed per slab and reduced as 3 scalars (no Allgatherv of K p
    values, no p-vector Allreduce), mean/spread left distributed (no rank-0 gather), and an
    ensemble spread over R > K ranks (each rank holds K/R of it)."""
    if r > k and not fixed:
        return None  # DistributedEnsemble refuses fewer members than ranks
    if fixed:
        return terms_fixed(n, k, r, steps, gpu, on_device)
    alpha, beta = (ALPHA_NET, BETA_NET) if gpu else (ALPHA_SHM, BETA_SHM)
    n2 = n * n
    p = 2 * n2                       # every grid point observed (experiments 1-3)
    k_r = math.ceil(k / r)           # members on rank 0
    rows_r = math.ceil(n / r)        # grid rows on rank 0
    dim_r = 2 * rows_r * n           # state elements of rank 0's columns
    t = {}
    # forecast
    if forecast is None:
        t["forecast"] = 0.0
    elif forecast == "sqg":
        t["forecast"] = math.ceil(k_r / (HOST_CORES if gpu else 1)) * sqg_member_cycle(n)
    else:
        if gpu:
            t["forecast"] = max(VIT_GPU_MIN, k_r * VIT_GFLOP(n) * 1e9 / VIT_GPU_FLOPS)
        else:
            t["forecast"] = k_r * VIT_MEMBER.get(n, VIT_MEMBER[128] * VIT_GFLOP(n) / VIT_GFLOP(128))
    # observe_all: ObservationSpace, h(x) of the local members, Allgatherv of K p doubles
    t["observe"] = p * C_OBSSPACE + k_r * p * C_H
    t["allgather_hx"] = 0.0 if r == 1 else (r - 1) * alpha + beta * 8 * (k - k_r) * p
    # two transposes: pack/unpack + Alltoallv (R-1 messages, K_r 2N^2 (R-1)/R doubles out)
    t["transpose"] = 2 * (k_r * 2 * n2 * C_TR + (0 if r == 1 else
                          (r - 1) * alpha + beta * 8 * k_r * 2 * n2 * (r - 1) / r))
    # column_mean_spread twice: compute on the slab, Gatherv 4 values per column to rank 0
    t["gather"] = 2 * (k * dim_r * C_MS + 4 * n2 * C_TR
                       + (0 if r == 1 else (r - 1) * alpha + beta * 8 * 4 * n2 * (r - 1) / r))
    t["diag"] = k * p * C_DIAG       # rank 0, serial, over the replicated h(x)
    # the filter on rank 0's slab
    if filt == "ensf":
        c = C_ENSF_GPU if gpu else C_ENSF
        t["filter"] = steps * k * dim_r * c + k * dim_r * (C_ENSF_FIX / (GPU_BW_RATIO if gpu else 1))
        if gpu:
            t["filter"] += steps * TAU_STEP_GPU + 2 * k * dim_r * 8 / H2D_BW
        # innovation vector (p doubles) once, stopping-rule max (1 double) per step after W
        t["reductions"] = allreduce(8 * p, r, alpha, beta) + max(0, steps - 201) * allreduce(8, r, alpha, beta)
    elif filt == "ensf-standard":
        a, b = ENSF_STD
        t["filter"] = steps * k * dim_r * (a + b * k) / (GPU_BW_RATIO if gpu else 1)
        if gpu:
            t["filter"] += steps * TAU_STEP_GPU + 2 * k * dim_r * 8 / H2D_BW
        # per step: Allreduce of the per-row member distances, N K^2 doubles
        t["reductions"] = steps * allreduce(8 * n * k * k, r, alpha, beta)
    else:  # letkf
        t["filter"] = rows_r * n * letkf_column(k, n) / (LETKF_GPU_SPEEDUP if gpu else 1)
        if gpu:
            t["filter"] += (2 * k * dim_r + k * p) * 8 / H2D_BW
        t["reductions"] = allreduce(16, r, alpha, beta)
    t["link"] = (LINK_FIXED + LINK_PER_OBS * p + 32 * n2 / LINK_BW) if service else 0.0
    return t


def terms_fixed(n, k, r, steps, gpu, on_device=False):
    """on_device: the per-value host work (h(x), packs, mean/spread, statistics) also on the
    GCD, at the bandwidth ratio (and no host <-> device copy of the slab)."""
    alpha, beta = (ALPHA_NET, BETA_NET) if gpu else (ALPHA_SHM, BETA_SHM)
    h = GPU_BW_RATIO if on_device else 1.0
    n2 = n * n
    p = 2 * n2
    dim_r = 2 * math.ceil(n / r) * n
    share = k * 2 * n2 / r           # values of the ensemble on one rank
    t = {"forecast": 0.0, "link": 0.0}
    t["observe"] = (p / r) * C_OBSSPACE + k * (p / r) * C_H / h
    t["allgather_hx"] = 0.0
    t["transpose"] = 2 * (share * C_TR / h + (0 if r == 1 else
                          (r - 1) * alpha + beta * 8 * share * (r - 1) / r))
    t["gather"] = 2 * k * dim_r * C_MS / h
    t["diag"] = k * (p / r) * C_DIAG / h + allreduce(24, r, alpha, beta)
    c = C_ENSF_GPU if gpu else C_ENSF
    t["filter"] = steps * k * dim_r * c + k * dim_r * (C_ENSF_FIX / (GPU_BW_RATIO if gpu else 1))
    if gpu:
        t["filter"] += steps * TAU_STEP_GPU + (0 if on_device else 2 * k * dim_r * 8 / H2D_BW)
    t["reductions"] = allreduce(24, r, alpha, beta) + max(0, steps - 201) * allreduce(8, r, alpha, beta)
    return t


GROUPS = {  # the five terms of docs/scaling.md
    "T_forecast": ["forecast"],
    "T_transpose": ["transpose", "allgather_hx"],
    "T_analysis": ["observe", "filter", "reductions"],
    "T_gather": ["gather", "diag"],
    "T_link": ["link"],
}


def grouped(t):
    return {g: sum(t[x] for x in xs) for g, xs in GROUPS.items()}


def limiter(t):
    """Which single term is largest (named as in the doc)."""
    names = {"forecast": "forecast", "filter": "filter compute", "observe": "h(x)",
             "allgather_hx": "h(x) allgather", "transpose": "transposes",
             "gather": "rank-0 gathers", "diag": "rank-0 diagnostics",
             "reductions": "filter reductions", "link": "link"}
    key = max(t, key=t.get)
    return names[key]


def fmt(s):
    if s is None:
        return "—"
    if s >= 100:
        return f"{s:.0f}"
    if s >= 10:
        return f"{s:.1f}"
    if s >= 0.01:
        return f"{s:.3f}".rstrip("0").rstrip(".") if s < 1 else f"{s:.2f}"
    if s >= 1e-4:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.0f} µs"


def table(n, gpu, steps=300):
    print("| K | R | fc SQG | fc ViT | h(x) + allgather | transposes | EnSF filter | EnSF reductions"
          " | gathers + diag | **EnSF + SQG** | **EnSF + ViT** | LETKF filter | **LETKF + SQG** |"
          " limit (EnSF + ViT) |")
    print("|" + "---|" * 14)
    for k in (20, 100, 1024):
        for r in (1, 2, 8, 64, 1024):
            te = terms(n, k, r, "ensf", steps, gpu)
            if te is None:
                continue  # R > K: DistributedEnsemble refuses to start
            tv = terms(n, k, r, "ensf", steps, gpu, forecast="vit")
            tl = terms(n, k, r, "letkf", steps, gpu)
            print(f"| {k} | {r} | {fmt(te['forecast'])} | {fmt(tv['forecast'])}"
                  f" | {fmt(te['observe'] + te['allgather_hx'])}"
                  f" | {fmt(te['transpose'])} | {fmt(te['filter'])} | {fmt(te['reductions'])}"
                  f" | {fmt(te['gather'] + te['diag'])} | **{fmt(sum(te.values()))}**"
                  f" | **{fmt(sum(tv.values()))}** | {fmt(tl['filter'])}"
                  f" | **{fmt(sum(tl.values()))}** | {limiter(tv)} |")
    print()


def weak_scaling(steps=SC_S, k=SC_K):
    print("| R | N (2N²/R ≈ 10⁶) | K | EnSF filter | reductions | h(x) + allgather | transposes |"
          " gathers + diag | **rtda now** | limited by | h(x) copy per rank | **with §6 fixes** |"
          " **fixes + host work on the GPU** |")
    print("|" + "---|" * 13)
    for r in (1, 2, 8, 64, 256, 1024):
        n = int(round(math.sqrt(r * 1e6 / 2) / 2) * 2)
        kk = max(k, r)  # rtda needs K >= R
        t = terms(n, kk, r, "ensf", steps, gpu=True, forecast=None)
        t.pop("forecast")
        t.pop("link")
        f = terms(n, k, r, "ensf", steps, gpu=True, forecast=None, fixed=True)
        d = terms(n, k, r, "ensf", steps, gpu=True, forecast=None, fixed=True, on_device=True)
        print(f"| {r} | {n} | {kk} | {fmt(t['filter'])} | {fmt(t['reductions'])}"
              f" | {fmt(t['allgather_hx'] + t['observe'])} | {fmt(t['transpose'])} | "
              f"{fmt(t['gather'] + t['diag'])} | **{fmt(sum(t.values()))}** | {limiter(t)} | "
              f"{8 * kk * 2 * n * n / 1e9:.1f} GB | **{fmt(sum(f.values()))}** | **{fmt(sum(d.values()))}** |")
    print()


def standard_table(steps=500):
    print("| N | K | R | EnSF standard filter | its per-step Allreduce (N·K² doubles) | share |")
    print("|" + "---|" * 6)
    for n in (64, 256, 1024):
        for k in (20, 100):
            for r in (1, 8, 64):
                t = terms(n, k, r, "ensf-standard", steps, gpu=True, forecast=None)
                if t is None:
                    continue
                share = t["reductions"] / (t["filter"] + t["reductions"])
                print(f"| {n} | {k} | {r} | {fmt(t['filter'])} | {fmt(t['reductions'])} | {share:.0%} |")
    print()


def check():
    """1 vs 2 ranks on this machine: N = 64, K = 20, one core per rank."""
    for filt, steps in (("ensf", 300), ("letkf", 0)):
        for r in (1, 2):
            t = terms(64, 20, r, filt, steps, gpu=False)
            an = sum(v for key, v in t.items() if key not in ("forecast", "link"))
            print(f"{filt:6s} R={r}: forecast {t['forecast']:.3f} s  analysis {an:.3f} s  "
                  + "  ".join(f"{key} {v * 1e3:.2f} ms" for key, v in t.items() if key != "forecast"))


if __name__ == "__main__":
    if "--check" in sys.argv:
        check()
        sys.exit(0)
    print(f"GPU EnSF rate (calibrated to [SC]): {C_ENSF_GPU * 1e12:.1f} ps per member-element-step;"
          f" CPU here {C_ENSF * 1e9:.2f} ns; CPU x bandwidth ratio {C_ENSF / GPU_BW_RATIO * 1e12:.1f} ps\n")
    for n in (64, 128, 256, 512, 1024):
        print(f"### N = {n} (GPU model, EnSF paper mode 300 steps)\n")
        table(n, gpu=True)
    print("### This machine's cores (CPU model), N = 64 and 256\n")
    for n in (64, 256):
        print(f"N = {n}:\n")
        table(n, gpu=False)
    print("### Weak scaling, 1e6 state variables per GPU, K = 20, 500 steps\n")
    weak_scaling()
    print("### EnSF standard mode, 500 steps (GPU model)\n")
    standard_table()
