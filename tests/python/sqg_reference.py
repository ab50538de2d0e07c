#!/usr/bin/python3
"""Independent NumPy reference of the SQG turbulence benchmark dynamics.

Written from docs/science.md section 1 (eq. 1-6 and the "Benchmark spectral
conventions"); it is a test oracle for the C++ model, not production code.

Two dynamics are offered:

* ``sqgturb`` (default): the community benchmark's conventions.  Derivative
  multipliers are the double wavenumbers 2*pi*n/L rounded once to float32 and
  then used in double arithmetic; the dealiased Jacobian spectrum is taken from
  the padded (M = 3N/2) grid's forward transform WITHOUT dividing by 2.25.
* ``exact``: double-precision derivative wavenumbers and the Jacobian spectrum
  divided by 2.25.  Everything else is identical, so that
  benchmark(U, q) == exact(2.25 U, 2.25 q) / 2.25 when both use the same
  wavenumber rounding.

numpy's irfft2 silently uses only the real part of the l-Hermitian part of the
k = 0 and Nyquist columns; docs/science.md states that this implicit behaviour is
the reference, so no explicit symmetrisation is done here on purpose (the C++
side does it explicitly; this file checks it independently).

Usage (Debian's interpreter, which has h5py):

  /usr/bin/python3 tests/python/sqg_reference.py --in IN.h5 --steps S \
      --out OUT.h5 [--dynamics sqgturb|exact] [--no-dealias] [--time]

IN.h5 holds ``q`` (level=2, y, x) float64 and root attributes with the model
configuration (N, L, H, U, f, nsq, g, theta0, tdiab, ekman_r, diff_order,
diff_efold, dt, symmetric, dealias, dynamics); missing ones get the reference
values of docs/science.md.  OUT.h5 gets ``q`` after S steps, the same attributes
and ``steps``.
"""

import argparse
import sys
import time

import numpy as np

# Reference parameters of docs/science.md (N = 64 configuration).
DEFAULTS = {
    "N": 64,
    "L": 20000.0e3,
    "H": 10.0e3,
    "U": 30.0,
    "f": 1.0e-4,
    "nsq": 1.0e-4,
    "g": 9.8,
    "theta0": 300.0,
    "tdiab": 10.0 * 86400.0,
    "ekman_r": 0.0,
    "diff_order": 8.0,
    "diff_efold": 86400.0,
    "dt": 1200.0,
    "symmetric": True,
    "dealias": True,
    "dynamics": "sqgturb",
}

# docs/science.md "Other resolutions (N: dt, tau_diff)".  Used only for dt and
# diff_efold when they are absent *and* N != 64 (at N = 64 these are the
# reference values above).
RESOLUTION_TABLE = {
    32: (2400.0, 3.0 * 86400.0),
    64: (1200.0, 86400.0),
    128: (600.0, 8.0 * 3600.0),
    256: (90.0, 5400.0),
    512: (90.0, 1800.0),
    1024: (40.0, 900.0),
}

PAD_FACTOR = 2.25  # (3/2)**2


def _as_bool(v):
    if isinstance(v, (bytes, np.bytes_)):
        v = v.decode()
    if isinstance(v, str):
        s = v.strip().lower()
        if s in ("1", "true", "yes", "on", "t", "y"):
            return True
        if s in ("0", "false", "no", "off", "f", "n", ""):
            return False
        raise ValueError("cannot interpret %r as a boolean" % v)
    return bool(np.asarray(v).reshape(-1)[0]) if np.ndim(v) else bool(v)


def _as_str(v):
    if isinstance(v, (bytes, np.bytes_)):
        return v.decode()
    if isinstance(v, np.ndarray):
        return _as_str(v.reshape(-1)[0])
    return str(v)


def _as_float(v):
    return float(np.asarray(v).reshape(-1)[0])


def normalize_params(params, n_grid=None):
    """Fill in defaults and convert types.  ``n_grid`` (from the data) wins
    over an ``N`` entry; a mismatch is an error."""
    p = dict(params or {})
    if n_grid is not None:
        if "N" in p and int(_as_float(p["N"])) != int(n_grid):
            raise ValueError("attribute N=%s does not match q's grid %d"
                             % (p["N"], n_grid))
        p["N"] = int(n_grid)
    out = {}
    out["N"] = int(_as_float(p.get("N", DEFAULTS["N"])))
    N = out["N"]
    if N % 2 or N < 4:
        raise ValueError("N must be even and >= 4")
    for key in ("L", "H", "U", "f", "nsq", "g", "theta0", "tdiab", "ekman_r",
                "diff_order"):
        out[key] = _as_float(p.get(key, DEFAULTS[key]))
    dt_def, efold_def = RESOLUTION_TABLE.get(N, (DEFAULTS["dt"],
                                                 DEFAULTS["diff_efold"]))
    out["dt"] = _as_float(p["dt"]) if "dt" in p else dt_def
    out["diff_efold"] = (_as_float(p["diff_efold"]) if "diff_efold" in p
                         else efold_def)
    out["symmetric"] = _as_bool(p.get("symmetric", DEFAULTS["symmetric"]))
    out["dealias"] = _as_bool(p.get("dealias", DEFAULTS["dealias"]))
    dyn = _as_str(p.get("dynamics", DEFAULTS["dynamics"])).strip().lower()
    if dyn not in ("sqgturb", "exact"):
        raise ValueError("dynamics must be 'sqgturb' or 'exact', got %r" % dyn)
    out["dynamics"] = dyn
    # Hidden knob: derivative-multiplier rounding (None: follow dynamics).
    rd = p.get("round_derivatives", None)
    out["round_derivatives"] = (dyn == "sqgturb") if rd is None else _as_bool(rd)
    return out


def _wavenumber_indices(n):
    """Signed integer indices of an n-point real FFT: (rows l, cols k).

    FFT order for l (0..n/2-1, -n/2..-1); k = 0..n/2 where the last (Nyquist)
    column is -n/2, exactly like n*fftfreq(n)."""
    idx = np.arange(n, dtype=np.float64)
    idx[n // 2:] -= n  # n/2 -> -n/2, ..., n-1 -> -1
    cols = idx[: n // 2 + 1].copy()
    cols[n // 2] = -(n // 2)
    return idx, cols


def _dimensional(indices, L):
    # (2*pi*n)/L evaluated left to right in double precision.
    return 2.0 * np.pi * indices / L


class SQGReference:
    """The model.  The state is the unnormalised rfft2 of q, shape
    (2, N, N/2+1) complex128, [level][l][k]."""

    def __init__(self, params=None):
        p = normalize_params(params)
        self.params = p
        N = p["N"]
        self.N = N
        self.M = 3 * N // 2
        self.dealias = p["dealias"]
        self.exact = p["dynamics"] == "exact"
        L = p["L"]

        # --- N-grid wavenumbers (double, unrounded) -------------------------
        lrow, kcol = _wavenumber_indices(N)
        k1 = _dimensional(kcol, L)
        l1 = _dimensional(lrow, L)
        kk = k1[np.newaxis, :]
        ll = l1[:, np.newaxis]
        ksq = kk * kk + ll * ll  # (N, N/2+1) unrounded double K^2
        self.ksq = ksq
        K = np.sqrt(ksq)
        self.K = K

        # --- inversion (eq. 1) ----------------------------------------------
        mu = K * np.sqrt(p["nsq"]) * p["H"] / p["f"]
        mu = np.maximum(mu, np.finfo(np.float64).eps)
        hovermu = p["H"] / mu
        with np.errstate(over="ignore"):
            sinhmu = np.sinh(mu)
            tanhmu = np.tanh(mu)
        self.inv_a = hovermu / sinhmu    # multiplies the "other" level
        self.inv_b = hovermu / tanhmu    # multiplies the "same" level
        self.inv_a[0, 0] = 0.0           # psi-hat(K = 0) = 0
        self.inv_b[0, 0] = 0.0

        # --- hyperdiffusion integrating factor (eq. 5) ----------------------
        kc = np.pi * N / L
        self.hyperdiff = np.exp((-p["dt"] / p["diff_efold"])
                                * (K / kc) ** p["diff_order"])

        # --- derivative multipliers (N grid or padded grid) -----------------
        rnd = p["round_derivatives"]
        if self.dealias:
            lpad, kpad = _wavenumber_indices(self.M)
            kd = _dimensional(kpad, L)
            ld = _dimensional(lpad, L)
        else:
            kd, ld = k1.copy(), l1.copy()
        if rnd:
            kd = kd.astype(np.float32).astype(np.float64)
            ld = ld.astype(np.float32).astype(np.float64)
        self.ikd = (1j * kd)[np.newaxis, :]   # broadcast over rows
        self.ild = (1j * ld)[:, np.newaxis]   # broadcast over columns

        # --- equilibrium q (eq. 3), on the grid then rfft2 -------------------
        y = np.arange(N, dtype=np.float64) * L / N
        lw = 2.0 * np.pi / L
        mul = lw * np.sqrt(p["nsq"]) * p["H"] / p["f"]
        U = p["U"]
        H = p["H"]
        qeq = np.zeros((2, N), dtype=np.float64)
        if p["symmetric"]:
            prof = (-(mul * U / 2.0) / (lw * H) * np.cosh(mul / 2.0)
                    / np.sinh(mul / 2.0) * np.cos(lw * y))
            qeq[0] = prof
            qeq[1] = prof
        else:
            qeq[0] = -(mul * U) / (lw * H) * np.cos(lw * y) / np.sinh(mul)
            qeq[1] = (-(mul * U) / (lw * H) * (np.cosh(mul) / np.sinh(mul))
                      * np.cos(lw * y))
        self.qeq_grid = np.repeat(qeq[:, :, np.newaxis], N, axis=2)
        self.qeq_spec = np.fft.rfft2(self.qeq_grid)

        self.rdiab = 1.0 / p["tdiab"]
        self.ekman_r = p["ekman_r"]
        self.symmetric = p["symmetric"]
        self.dt = p["dt"]

    # ------------------------------------------------------------------
    def to_spectral(self, q_grid):
        q_grid = np.asarray(q_grid, dtype=np.float64)
        if q_grid.shape != (2, self.N, self.N):
            raise ValueError("q must have shape (2, %d, %d), got %s"
                             % (self.N, self.N, q_grid.shape))
        return np.fft.rfft2(q_grid)

    def to_grid(self, q_spec):
        return np.fft.irfft2(q_spec, s=(self.N, self.N))

    def invert(self, q_spec):
        """Eq. 1: boundary PV -> streamfunction on both boundaries."""
        psi = np.empty_like(q_spec)
        psi[0] = self.inv_a * q_spec[1] - self.inv_b * q_spec[0]
        psi[1] = self.inv_b * q_spec[1] - self.inv_a * q_spec[0]
        return psi

    def _pad(self, spec):
        """(..., N, N/2+1) -> (..., M, M/2+1): x2.25, conjugated Nyquist column
        to padded column N/2 with the same row mapping."""
        N, M = self.N, self.M
        h = N // 2
        out = np.zeros(spec.shape[:-2] + (M, M // 2 + 1), dtype=np.complex128)
        out[..., :h, :h] = PAD_FACTOR * spec[..., :h, :h]
        out[..., M - h:, :h] = PAD_FACTOR * spec[..., h:, :h]
        out[..., :h, h] = np.conj(PAD_FACTOR * spec[..., :h, h])
        out[..., M - h:, h] = np.conj(PAD_FACTOR * spec[..., h:, h])
        return out

    def _truncate(self, spec):
        """(..., M, M/2+1) -> (..., N, N/2+1); Nyquist column zero, no /2.25."""
        N, M = self.N, self.M
        h = N // 2
        out = np.zeros(spec.shape[:-2] + (N, h + 1), dtype=np.complex128)
        out[..., :h, :h] = spec[..., :h, :h]
        out[..., h:, :h] = spec[..., M - h:, :h]
        return out

    def jacobian_spec(self, psi_spec, q_spec):
        """Spectrum of J(psi, q) = psi_x q_y - psi_y q_x per the conventions
        (benchmark: 2.25 x exact when dealiased)."""
        both = np.stack((psi_spec, q_spec))          # (2 fields, 2 lev, ...)
        if self.dealias:
            both = self._pad(both)
            n = self.M
        else:
            n = self.N
        deriv = np.empty((4,) + both.shape[1:], dtype=np.complex128)
        deriv[0] = self.ikd * both[0]   # psi_x  (= v)
        deriv[1] = self.ild * both[0]   # psi_y  (= -u)
        deriv[2] = self.ikd * both[1]   # q_x
        deriv[3] = self.ild * both[1]   # q_y
        g = np.fft.irfft2(deriv, s=(n, n))
        u = -g[1]
        v = g[0]
        adv = u * g[2] + v * g[3]
        jac = np.fft.rfft2(adv)
        if self.dealias:
            jac = self._truncate(jac)
            if self.exact:
                jac = jac / PAD_FACTOR
        return jac

    def tendency(self, q_spec):
        """Eq. 2 (+ eq. 4): d q_spec / dt."""
        psi = self.invert(q_spec)
        jac = self.jacobian_spec(psi, q_spec)
        tend = self.rdiab * (self.qeq_spec - q_spec) - jac
        if self.ekman_r != 0.0:
            tend[0] += self.ekman_r * self.ksq * psi[0]
            if self.symmetric:
                tend[1] -= self.ekman_r * self.ksq * psi[1]
        return tend

    def step(self, q_spec):
        """One RK4 step on the spectral state followed by the hyperdiffusion
        integrating factor (eq. 5).  Returns the new spectral state."""
        dt = self.dt
        k1 = dt * self.tendency(q_spec)
        k2 = dt * self.tendency(q_spec + 0.5 * k1)
        k3 = dt * self.tendency(q_spec + 0.5 * k2)
        k4 = dt * self.tendency(q_spec + k3)
        return self.hyperdiff * (q_spec + (k1 + 2.0 * k2 + 2.0 * k3 + k4) / 6.0)

    def run(self, q_spec, steps):
        for _ in range(int(steps)):
            q_spec = self.step(q_spec)
        return q_spec


# ---------------------------------------------------------------------------
# Module-level convenience API
_CURRENT = None


def make_model(params=None):
    """Build a model from a dict of parameters (names as the HDF5 attributes;
    missing ones default).  Also becomes the model used by ``step``."""
    global _CURRENT
    _CURRENT = SQGReference(params)
    return _CURRENT


def step(state_spec, model=None):
    """Advance a spectral state (2, N, N/2+1) by one step with ``model`` (or
    the model most recently built by make_model)."""
    m = model if model is not None else _CURRENT
    if m is None:
        raise RuntimeError("call make_model(params) first")
    return m.step(state_spec)


def nature_initial_condition(N=64, L=DEFAULTS["L"], seed=42):
    """docs/science.md nature-run recipe: N(0, 100^2) noise on both levels, plus
    on the lid 2000 sin(x/2)^40 sin(y)^20 with x, y scaled to [0, 2 pi), area
    mean removed per level.  Noise from numpy's legacy RandomState(seed).
    ``L`` does not enter (the bump is defined on the [0, 2pi) scaled grid)."""
    del L
    rng = np.random.RandomState(seed)
    q = rng.normal(0.0, 100.0, size=(2, N, N))
    s = 2.0 * np.pi * np.arange(N, dtype=np.float64) / N
    x = s[np.newaxis, :]
    y = s[:, np.newaxis]
    q[1] += 2000.0 * np.sin(x / 2.0) ** 40 * np.sin(y) ** 20
    q -= q.mean(axis=(1, 2), keepdims=True)
    return q


# ---------------------------------------------------------------------------
# HDF5 I/O and CLI
ATTR_NAMES = ("N", "L", "H", "U", "f", "nsq", "g", "theta0", "tdiab",
              "ekman_r", "diff_order", "diff_efold", "dt", "symmetric",
              "dealias", "dynamics")


def read_state(path):
    import h5py
    with h5py.File(path, "r") as fh:
        q = np.array(fh["q"][...], dtype=np.float64)
        attrs = {k: fh.attrs[k] for k in fh.attrs.keys()}
    return q, attrs


def write_state(path, q, attrs):
    import h5py
    with h5py.File(path, "w") as fh:
        fh.create_dataset("q", data=np.asarray(q, dtype=np.float64))
        for k, v in attrs.items():
            fh.attrs[k] = v


def tune_malloc():
    """Best effort: keep glibc from returning every large temporary to the
    OS (mmap/munmap per array), which makes each FFT temporary page-fault
    afresh; on some virtual machines that triples the time per step.  Has no
    effect on results."""
    try:
        import ctypes
        import ctypes.util
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        libc.mallopt(m_mmap_threshold, 32 * 1024 * 1024)
        libc.mallopt(m_trim_threshold, 1024 * 1024 * 1024)
    except Exception:  # pragma: no cover - not glibc
        pass


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--in", dest="inp", required=True, help="input HDF5")
    ap.add_argument("--out", required=True, help="output HDF5")
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--dynamics", choices=("sqgturb", "exact"), default=None)
    ap.add_argument("--no-dealias", action="store_true")
    ap.add_argument("--time", action="store_true",
                    help="print mean wall time per step")
    rd = ap.add_mutually_exclusive_group()
    rd.add_argument("--round-derivatives", dest="round_derivatives",
                    action="store_const", const=True, default=None,
                    help=argparse.SUPPRESS)
    rd.add_argument("--no-round-derivatives", dest="round_derivatives",
                    action="store_const", const=False, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    tune_malloc()

    q, attrs = read_state(args.inp)
    if q.ndim != 3 or q.shape[0] != 2 or q.shape[1] != q.shape[2]:
        sys.exit("q must have shape (2, N, N), got %s" % (q.shape,))
    params = {k: attrs[k] for k in ATTR_NAMES if k in attrs}
    out_attrs = dict(attrs)
    if args.dynamics is not None:
        params["dynamics"] = args.dynamics
        out_attrs["dynamics"] = args.dynamics
    if args.no_dealias:
        params["dealias"] = False
        prev = attrs.get("dealias", None)
        if isinstance(prev, (str, bytes, np.bytes_)):
            out_attrs["dealias"] = "false"
        elif isinstance(prev, (np.ndarray, np.generic)):
            out_attrs["dealias"] = np.zeros_like(prev)
        else:
            out_attrs["dealias"] = np.int32(0)
    if args.round_derivatives is not None:
        params["round_derivatives"] = args.round_derivatives
    params = normalize_params(params, n_grid=q.shape[1])
    model = make_model(params)

    spec = model.to_spectral(q)
    t0 = time.perf_counter()
    spec = model.run(spec, args.steps)
    elapsed = time.perf_counter() - t0
    qout = model.to_grid(spec)

    out_attrs["steps"] = np.int64(args.steps)
    write_state(args.out, qout, out_attrs)
    if args.time:
        per = elapsed / max(args.steps, 1)
        print("N=%d dynamics=%s dealias=%s steps=%d mean time/step = %.4f ms"
              % (model.N, params["dynamics"], params["dealias"], args.steps,
                 per * 1e3))
    return 0


if __name__ == "__main__":
    sys.exit(main())
