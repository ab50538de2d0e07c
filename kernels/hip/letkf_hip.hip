// GPU kernels (HIP or CUDA, gpu_runtime.hpp) of the LETKF (docs/science.md §3, eq. 7–10): the
// ensemble statistics in observation space and the batched local analyses (h(x) itself is
// observe_hip.hip's). Thin loops around the shared arithmetic of filters/letkf_math.hpp;
// tests/hip/letkf_replay.hpp replays this kernel's sequence serially on the CPU (its oracle, held
// to LetkfAnalysis::analyse_columns).
//
// Batching: one work-group of 64 threads per grid column at a time,
// a grid-stride loop over the columns of the batch. A column's work:
//   1. its candidates: thread 0 lays out the (offset, level) segments of the candidate list
//      (prefix sums), then all threads fill candidate slots t = 0 .. T − 1 (observation, level,
//      ρ) independently, each finding its segment by binary search: the list has the CPU's
//      order without any compaction;
//   2. per level: every entry C_ij (i ≥ j) and b_i is one work item summing over the
//      candidates in list order (the CPU's order for that entry);
//   3. the round-robin Jacobi eigensolver: per round, the m/2 rotations (one item each), a
//      barrier, the 2 × 2 blocks of C and the row pairs of V (one item each), a barrier;
//   4. the transform (eq. 9) and RTPS (eq. 10): O(k) sums by one thread each (in the CPU's
//      order), O(k²) products spread over the threads.
// C and V (2 m² doubles) sit in LDS when they fit in 32 KiB (k ≤ 44), in a per-work-group
// slice of a global workspace otherwise (k up to 128 and beyond); the candidate list always
// lives in the global workspace. The code is the same through generic pointers.
// Contraction is off for the whole file, so that a × b + c rounds twice, as on the CPU.
#if defined(__HIP__)
#pragma clang fp contract(off)  // nvcc: -fmad=false on its command line
#endif

#include <stdexcept>
#include <string>

#include "filters/letkf_math.hpp"
#include "hip/ensf_hip_kernels.hpp"
#include "hip/gpu_runtime.hpp"
#include "hip/letkf_hip_kernels.hpp"

namespace rtda::hip::detail {

namespace {

constexpr int kThreads = 256;  // element-wise kernels
// 64 threads per column: one wavefront on AMD, two warps on NVIDIA. Nothing relies on lanes
// running in lockstep: every exchange through shared memory has its barrier.
constexpr int kColumnThreads = 64;

using gpu::check;

unsigned grid_for(std::size_t work) {
  const std::size_t blocks = (work + kThreads - 1) / kThreads;
  return static_cast<unsigned>(blocks > 0 ? blocks : 1);
}

__device__ inline std::size_t thread_index() {
  return static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}

using filters::JacobiRotation;

__global__ __launch_bounds__(kThreads) void observation_rows_kernel(const double* hx, std::size_t p,
                                                                    int k, const double* value,
                                                                    const double* error_sd,
                                                                    double* dev, double* innov,
                                                                    double* inv_sd) {
  const std::size_t o = thread_index();
  if (o >= p) return;
  filters::letkf_observation_row(hx, p, k, o, value[o], error_sd[o], dev + o * k, innov[o],
                                 inv_sd[o]);
}

// Per-column scalars shared by the work-group.
struct ColumnScratch {
  double mean, increment, floor_abs;
  unsigned used;
  int rotated;
};

// Bytes of the per-work-group global workspace and of the dynamic LDS.
struct ColumnLayout {
  std::size_t workspace_stride = 0;  // bytes per work-group
  std::size_t lds_bytes = 0;
  bool matrices_in_lds = false;
};

std::size_t round_up(std::size_t bytes, std::size_t to) {
  return (bytes + to - 1) / to * to;
}

ColumnLayout column_layout(const LetkfDeviceColumns& b) {
  ColumnLayout l;
  const std::size_t k = static_cast<std::size_t>(b.k);
  const std::size_t m = static_cast<std::size_t>(filters::jacobi_size(b.k));
  const std::size_t matrices = 2 * m * m * sizeof(double);
  l.matrices_in_lds = matrices <= 32 * 1024;
  const std::size_t segments = 2 * static_cast<std::size_t>(b.n_offsets) + 1;
  l.workspace_stride =
      round_up(b.max_candidates * (sizeof(double) + 2 * sizeof(std::uint32_t)) +
                   (l.matrices_in_lds ? 0 : matrices) + segments * sizeof(std::uint32_t),
               256);
  l.lds_bytes = (l.matrices_in_lds ? matrices : 0) + 8 * k * sizeof(double) +
                round_up((m / 2) * sizeof(JacobiRotation), sizeof(double)) +
                round_up(sizeof(ColumnScratch), sizeof(double));
  return l;
}

__global__ __launch_bounds__(kColumnThreads) void columns_kernel(LetkfDeviceColumns b,
                                                                 char* workspace,
                                                                 std::size_t workspace_stride,
                                                                 bool matrices_in_lds) {
  extern __shared__ double lds[];
  const int k = b.k, m = filters::jacobi_size(k), half = m / 2;
  const int tid = static_cast<int>(threadIdx.x), nt = static_cast<int>(blockDim.x);
  const std::size_t nc = b.c1 - b.c0;
  const std::size_t max_cand = b.max_candidates;
  const int segments = 2 * b.n_offsets;

  // Global workspace of this work-group: doubles first (alignment), then 32-bit arrays.
  char* ws = workspace + static_cast<std::size_t>(blockIdx.x) * workspace_stride;
  double* cand_rho = reinterpret_cast<double*>(ws);
  double* global_matrices = cand_rho + max_cand;
  std::uint32_t* cand_obs = reinterpret_cast<std::uint32_t*>(
      global_matrices + (matrices_in_lds ? 0 : 2 * static_cast<std::size_t>(m) * m));
  std::int32_t* cand_level = reinterpret_cast<std::int32_t*>(cand_obs + max_cand);
  std::uint32_t* seg_start = reinterpret_cast<std::uint32_t*>(cand_level + max_cand);

  // LDS: [C, V when they fit] xb xa (2k each) bv xd z zb (k each) rotations scratch.
  double* next = lds;
  double* a = matrices_in_lds ? next : global_matrices;
  if (matrices_in_lds) next += 2 * m * m;
  double* v = a + m * m;
  double* xb = next;
  double* xa = xb + 2 * k;
  double* bv = xa + 2 * k;
  double* xd = bv + k;
  double* z = xd + k;
  double* zb = z + k;
  next = zb + k;
  JacobiRotation* rot = reinterpret_cast<JacobiRotation*>(next);
  next += (half * sizeof(JacobiRotation) + sizeof(double) - 1) / sizeof(double);
  ColumnScratch* sc = reinterpret_cast<ColumnScratch*>(next);

  for (std::size_t col = b.c0 + blockIdx.x; col < b.c1; col += gridDim.x) {
    const std::size_t rel = col - b.c0;
    for (int t = tid; t < 2 * k; t += nt) {
      const int lev = t / k, mm = t % k;
      xb[t] = b.prior_cols[(static_cast<std::size_t>(mm) * 2 + lev) * nc + rel];
    }
    const int i = static_cast<int>(col % b.n), j = static_cast<int>(col / b.n);
    const double xc = i * b.dx, yc = j * b.dx;

    // ---- 1. candidates, in the order of filters::LetkfObservationCells ----
    if (tid == 0) {
      std::uint32_t total = 0;
      if (b.localize) {
        for (int s = 0; s < b.n_offsets; ++s) {
          const std::size_t cell =
              static_cast<std::size_t>((j + b.offsets[2 * s + 1]) % b.n) * b.n +
              static_cast<std::size_t>((i + b.offsets[2 * s]) % b.n);
          seg_start[2 * s] = total;
          total += b.cell_start0[cell + 1] - b.cell_start0[cell];
          seg_start[2 * s + 1] = total;
          total += b.cell_start1[cell + 1] - b.cell_start1[cell];
        }
      } else {
        total = static_cast<std::uint32_t>(b.p);
      }
      seg_start[segments] = total;
    }
    __syncthreads();
    const std::uint32_t total = seg_start[segments];
    for (std::uint32_t t = tid; t < total; t += nt) {
      std::uint32_t o = t;
      if (b.localize) {
        int lo = 0, hi = segments - 1;  // the last segment s with seg_start[s] <= t
        while (lo < hi) {
          const int mid = (lo + hi + 1) / 2;
          if (seg_start[mid] <= t)
            lo = mid;
          else
            hi = mid - 1;
        }
        const int s = lo / 2, level = lo % 2;
        const std::size_t cell = static_cast<std::size_t>((j + b.offsets[2 * s + 1]) % b.n) * b.n +
                                 static_cast<std::size_t>((i + b.offsets[2 * s]) % b.n);
        const std::uint32_t* start = level == 0 ? b.cell_start0 : b.cell_start1;
        const std::uint32_t* list = level == 0 ? b.cell_obs0 : b.cell_obs1;
        o = list[start[cell] + (t - seg_start[lo])];
      }
      cand_obs[t] = o;
      cand_level[t] = b.obs_level[o];
      cand_rho[t] = filters::letkf_candidate_rho(xc, yc, b.obs_x[o], b.obs_y[o], b.domain_m,
                                                 b.domain_m, b.radius_m, b.localize);
    }
    __syncthreads();

    for (int lev = 0; lev < 2; ++lev) {
      // ---- 2. C (lower triangle, mirrored) and b (eq. 8–9) ----
      const int tri = k * (k + 1) / 2;
      for (int item = tid; item < tri + k; item += nt) {
        int r, c;
        if (item < tri) {
          filters::jacobi_block_of_item(item, r, c);  // the lower-triangle decoding
        } else {
          r = item - tri;
          c = -1;
        }
        double acc = 0;
        for (std::uint32_t t = 0; t < total; ++t) {
          const double w = filters::letkf_level_weight(cand_rho[t], cand_level[t], lev, b.v);
          if (!(w > b.cut)) continue;
          const std::uint32_t o = cand_obs[t];
          const double prec = filters::letkf_precision(w, b.inv_sd[o]);
          const double* y = b.dev + static_cast<std::size_t>(o) * k;
          acc += c >= 0 ? filters::letkf_c_term(prec, y[r], y[c])
                        : filters::letkf_b_term(prec, y[r], b.innov[o]);
        }
        if (c >= 0) {
          a[r * m + c] = acc;
          a[c * m + r] = acc;
        } else {
          bv[r] = acc;
        }
      }
      if (m > k) {  // odd k: the padding row and column stay zero
        for (int t = tid; t < m; t += nt) {
          a[k * m + t] = 0.0;
          a[t * m + k] = 0.0;
        }
      }
      for (int t = tid; t < m * m; t += nt)
        v[t] = t / m == t % m ? 1.0 : 0.0;
      if (tid == 0) {
        unsigned count = 0;
        for (std::uint32_t t = 0; t < total; ++t)
          count += filters::letkf_level_weight(cand_rho[t], cand_level[t], lev, b.v) > b.cut;
        sc->used = count;
        atomicAdd(b.counters, static_cast<unsigned long long>(count));
      }
      __syncthreads();
      if (tid == 0) sc->floor_abs = filters::jacobi_absolute_floor(a, m);
      __syncthreads();
      const bool used = sc->used > 0;

      // ---- 3. C = V Λ Vᵀ, round-robin Jacobi (eq. 8) ----
      bool converged = !used;
      for (int sweep = 0; used && sweep < filters::kJacobiMaxSweeps; ++sweep) {
        if (tid == 0) sc->rotated = 0;
        __syncthreads();
        for (int round = 0; round + 1 < m; ++round) {
          for (int pair = tid; pair < half; pair += nt) {
            int p, q;
            filters::jacobi_pair(m, round, pair, p, q);
            rot[pair] = filters::jacobi_rotation(a, m, p, q, sc->floor_abs);
            if (rot[pair].rotate) atomicOr(&sc->rotated, 1);
          }
          __syncthreads();
          const int blocks = filters::jacobi_block_items(m);
          for (int item = tid; item < blocks; item += nt) {
            int P, Q;
            filters::jacobi_block_of_item(item, P, Q);
            filters::jacobi_rotate_block(a, m, rot[P], rot[Q]);
          }
          for (int item = tid; item < m * half; item += nt)
            filters::jacobi_rotate_vectors(v, m, item / half, rot[item % half]);
          __syncthreads();
        }
        const bool rotated = sc->rotated != 0;
        __syncthreads();  // everyone has read the flag before thread 0 clears it
        if (!rotated) {
          converged = true;
          break;
        }
      }
      if (!used || !converged) {
        // No local observations: the prior, exactly. No convergence: the prior, counted.
        if (used && tid == 0) atomicAdd(b.counters + 1, 1ull);
        for (int t = tid; t < k; t += nt)
          xa[lev * k + t] = xb[lev * k + t];
        __syncthreads();
        continue;
      }

      // ---- 4. the transform (eq. 9), then RTPS (eq. 10) ----
      const double* xbl = xb + lev * k;
      double* xal = xa + lev * k;
      if (tid == 0) sc->mean = filters::letkf_mean(xbl, k);
      __syncthreads();
      for (int r = tid; r < k; r += nt)
        xd[r] = xbl[r] - sc->mean;
      __syncthreads();
      for (int e = tid; e < k; e += nt) {
        z[e] = filters::letkf_project(v, m, k, xd, e);
        zb[e] = filters::letkf_project(v, m, k, bv, e);
      }
      __syncthreads();
      if (tid == 0) {
        double increment = 0;
        for (int e = 0; e < k; ++e)
          increment += filters::letkf_increment_term(z[e], a[e * m + e], k, zb[e]);
        sc->increment = increment;
      }
      __syncthreads();
      for (int e = tid; e < k; e += nt)
        z[e] = filters::letkf_scaled_perturbation(z[e], a[e * m + e], k);
      __syncthreads();
      for (int r = tid; r < k; r += nt)
        xal[r] = sc->mean + sc->increment + filters::letkf_expand(v, m, k, z, r);
      __syncthreads();
      if (tid == 0) filters::letkf_rtps(xbl, xal, k, b.rtps);
      __syncthreads();
    }

    for (int t = tid; t < 2 * k; t += nt) {
      const int lev = t / k, mm = t % k;
      b.post_cols[(static_cast<std::size_t>(mm) * 2 + lev) * nc + rel] = xa[t];
    }
    __syncthreads();  // the next column reuses every buffer
  }
}

}  // namespace

void letkf_observation_rows(const double* hx, std::size_t p, int k, const double* value,
                            const double* error_sd, double* dev, double* innov, double* inv_sd) {
  if (p == 0) return;
  observation_rows_kernel<<<dim3(grid_for(p)), dim3(kThreads), 0, 0>>>(hx, p, k, value, error_sd,
                                                                       dev, innov, inv_sd);
  gpu::check_launch("observation_rows_kernel");
}

void letkf_columns(const LetkfDeviceColumns& batch) {
  if (batch.c1 <= batch.c0) return;
  const ColumnLayout layout = column_layout(batch);
  const std::size_t columns = batch.c1 - batch.c0;
  // Enough work-groups to fill the device several times over; each loops over columns.
  const std::size_t resident = static_cast<std::size_t>(multiprocessors()) * 16;
  const std::size_t groups = columns < resident ? columns : resident;
  const std::size_t most = gpu::opt_in_dynamic_shared(columns_kernel, layout.lds_bytes);
  if (layout.lds_bytes > most)
    throw std::runtime_error("LETKF (gpu): " + std::to_string(batch.k) + " members need " +
                             std::to_string(layout.lds_bytes) +
                             " bytes of shared memory per block; the device allows " +
                             std::to_string(most));
  char* workspace =
      static_cast<char*>(device_malloc(groups * layout.workspace_stride, "the LETKF workspace"));
  columns_kernel<<<dim3(static_cast<unsigned>(groups)), dim3(kColumnThreads), layout.lds_bytes,
                   0>>>(batch, workspace, layout.workspace_stride, layout.matrices_in_lds);
  const gpu::Error launch = gpu::last_error();
  const gpu::Error done = launch == gpu::kSuccess ? gpu::synchronize_device() : launch;
  device_free(workspace);
  check(done, "columns_kernel");
}

}  // namespace rtda::hip::detail
