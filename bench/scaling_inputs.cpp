// The measured inputs of the scaling model (docs/scaling.md): per-rank compute
// rates of every term of a cycle, and the MPI costs of the messages a cycle sends.
// Plain main(), so that it can run under mpiexec; one section per call:
//
//   OMP_NUM_THREADS=1 build/bench/scaling_inputs forecast [reps]   SQG per member-step, N
//   64/128/256 OMP_NUM_THREADS=1 build/bench/scaling_inputs vit [reps]        ViT forward per
//   member, N 64/128 OMP_NUM_THREADS=1 build/bench/scaling_inputs ensf [reps]       EnSF per
//   member-element-step OMP_NUM_THREADS=1 build/bench/scaling_inputs letkf [reps]      LETKF per
//   column vs k, p_loc OMP_NUM_THREADS=1 build/bench/scaling_inputs serial [reps]     obs space,
//   mean/spread, rank-0 diagnostics, triad OMP_NUM_THREADS=1 build/bench/scaling_inputs local
//   [reps]      the worker's h(x) + transposes on 1 rank mpiexec -n 2 build/bench/scaling_inputs
//   mpi [reps]             alpha/beta: Alltoallv, Allreduce, Gatherv,
//                                                                  and the worker's own transposes
//
// Every measurement is repeated `reps` times (default 5); each line prints min / median / max
// in one unit so that the spread on a shared machine is visible:
//   <section> <name> min <v> med <v> max <v> <unit>   [extra key=value ...]
// Compute sections use one thread (OMP_NUM_THREADS=1): the model scales per-rank work, and
// a rank of the worker group is one core here (one GPU die on the target machine).
#include <mpi.h>
#include <omp.h>

#include <Eigen/Core>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <functional>
#include <string>
#include <vector>

#include "analysis_problem.hpp"
#include "distributed_ensemble.hpp"
#include "filters/ensf.hpp"
#include "filters/letkf.hpp"
#include "obs/observation_space.hpp"
#include "sqg/nature_run.hpp"
#include "sqg/sqg_model.hpp"
#include "sqg/sqg_params.hpp"
#include "surrogate/vit.hpp"

namespace {

using namespace rtda;
using Clock = std::chrono::steady_clock;

int g_rank = 0;
int g_size = 1;

double now_s() {
  return std::chrono::duration<double>(Clock::now().time_since_epoch()).count();
}

struct Stats {
  double min, med, max;
  // The same for the process CPU time (single-threaded sections: time this process ran,
  // without the time slices other jobs on a shared machine took from it).
  double cpu_min = 0, cpu_med = 0, cpu_max = 0;
};

double cpu_s() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

Stats stats_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return {v.front(), v[v.size() / 2], v.back()};
}

// Times fn() `reps` times (after one untimed warm-up call when warm is true).
Stats repeat(int reps, const std::function<void()>& fn, bool warm = true) {
  if (warm) fn();
  std::vector<double> t, c;
  for (int r = 0; r < reps; ++r) {
    const double c0 = cpu_s(), t0 = now_s();
    fn();
    t.push_back(now_s() - t0);
    c.push_back(cpu_s() - c0);
  }
  Stats w = stats_of(t);
  const Stats cs = stats_of(c);
  w.cpu_min = cs.min;
  w.cpu_med = cs.med;
  w.cpu_max = cs.max;
  return w;
}

void print(const char* section, const std::string& name, Stats s, double scale, const char* unit,
           const std::string& extra = "") {
  if (g_rank != 0) return;
  std::printf("%s %s min %.4g med %.4g max %.4g %s | cpu min %.4g med %.4g max %.4g%s%s\n", section,
              name.c_str(), s.min * scale, s.med * scale, s.max * scale, unit, s.cpu_min * scale,
              s.cpu_med * scale, s.cpu_max * scale, extra.empty() ? "" : "  ", extra.c_str());
  std::fflush(stdout);
}

std::string fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

// ---- SQG forecast: one member, one thread, per RK4 step and per 12-hour cycle ----
void section_forecast(int reps) {
  for (int n : {64, 128, 256}) {
    const sqg::SqgParams p = sqg::reference_preset(n);
    const sqg::SqgModel<double> model(p, sqg::FftPlanning::kMeasure);
    sqg::EnsembleStepper<double> stepper(model, 1);
    std::vector<double> q = sqg::nature_initial_state(p, sqg::NatureSettings{});
    const int per_cycle = static_cast<int>(std::lround(12 * 3600.0 / p.dt_s));
    const int steps = n <= 128 ? per_cycle : 24;  // N = 256: 480 steps of ~25 ms, time 24
    const Stats s = repeat(reps, [&] { stepper.advance_grid(q, 1, steps); });
    print("forecast", "sqg_step_N" + std::to_string(n), s, 1e3 / steps, "ms",
          "steps_per_cycle=" + std::to_string(per_cycle) + " dt_s=" + fmt("%g", p.dt_s));
    print("forecast", "sqg_member_cycle_N" + std::to_string(n), s,
          static_cast<double>(per_cycle) / steps, "s");
  }
}

// ---- ViT forward, per member (batch of 20 at N = 64, 8 at N = 128) ----
void section_vit(int reps) {
  Eigen::setNbThreads(1);
  for (int n : {64, 128}) {
    surrogate::VitConfig c;
    c.grid_n = n;
    surrogate::Vit vit(c);
    const int batch = n == 64 ? 20 : 8;
    surrogate::Mat x = surrogate::Mat::Random(batch, vit.state_size());
    const Stats s = repeat(reps, [&] {
      surrogate::Mat y = vit.forward(x);
      if (y.size() == 0) std::puts("");
    });
    print("vit", "forward_member_N" + std::to_string(n), s, 1.0 / batch, "s",
          "gflop_per_member=" + fmt("%.3f", vit.flops_per_sample() * 1e-9) +
              " batch=" + std::to_string(batch));
  }
}

// ---- EnSF: cost per pseudo-time step from two step counts (fixed part = the rest) ----
void section_ensf(int reps) {
  omp_set_num_threads(1);
  struct Case {
    filters::EnsfMode mode;
    int n, k, s1, s2;
    double slab;  // fraction of the grid rows this "rank" owns
  };
  const std::vector<Case> cases = {
      {filters::EnsfMode::kPaper, 64, 20, 100, 300, 1.0},
      {filters::EnsfMode::kPaper, 64, 20, 100, 300, 0.5},
      {filters::EnsfMode::kPaper, 64, 40, 100, 300, 1.0},
      {filters::EnsfMode::kPaper, 128, 20, 50, 150, 1.0},
      // Standard mode: the whole default integration (500 steps): its per-step cost grows as
      // the softmax weights collapse (tiny weights), so a short run would under-estimate it.
      {filters::EnsfMode::kStandard, 64, 10, 10, 500, 1.0},
      {filters::EnsfMode::kStandard, 64, 20, 10, 500, 1.0},
      {filters::EnsfMode::kStandard, 64, 40, 10, 500, 1.0},
  };
  for (const Case& c : cases) {
    const bench::Problem p = bench::make_problem(c.n, c.k);
    const std::size_t n2 = static_cast<std::size_t>(c.n) * c.n;
    const std::size_t rows = static_cast<std::size_t>(std::lround(c.n * c.slab));
    const std::size_t c0 = 0, c1 = rows * c.n, slab = 2 * (c1 - c0);
    std::vector<double> cols(static_cast<std::size_t>(c.k) * slab), post(cols.size());
    for (int m = 0; m < c.k; ++m)
      for (int lev = 0; lev < 2; ++lev)
        std::copy_n(p.prior.data() + m * 2 * n2 + lev * n2 + c0, c1 - c0,
                    cols.data() + (m * 2 + lev) * (c1 - c0));
    const int rep = c.mode == filters::EnsfMode::kPaper ? reps : std::min(reps, 3);
    auto run = [&](int steps) {
      filters::EnsfSettings s = c.mode == filters::EnsfMode::kPaper
                                    ? filters::EnsfSettings::paper()
                                    : filters::EnsfSettings::standard();
      s.early_stopping = false;
      s.max_steps = steps;
      if (s.steps < steps) s.steps = steps;
      filters::EnsfAnalysis ensf(s);
      return repeat(rep, [&] {
        ensf.analyse_slab(c0, c1, {c.k, slab, cols}, p.obs, {7, 1}, {c.k, slab, post}, {});
      });
    };
    const Stats a = run(c.s1), b = run(c.s2);
    const std::string tag =
        std::string(c.mode == filters::EnsfMode::kPaper ? "paper" : "standard") + "_N" +
        std::to_string(c.n) + "_K" + std::to_string(c.k) + (c.slab < 1 ? "_halfslab" : "");
    print("ensf", tag + "_" + std::to_string(c.s1) + "steps", a, 1e3, "ms");
    print("ensf", tag + "_" + std::to_string(c.s2) + "steps", b, 1e3, "ms");
    // Derived from the two minima and the two medians (a max - max difference means nothing).
    const double ds = c.s2 - c.s1;
    const double work = static_cast<double>(c.k) * static_cast<double>(slab);
    const double step_min = (b.min - a.min) / ds, step_med = (b.med - a.med) / ds;
    const double cstep_min = (b.cpu_min - a.cpu_min) / ds, cstep_med = (b.cpu_med - a.cpu_med) / ds;
    if (g_rank == 0)
      std::printf(
          "ensf %s_per_step from_min %.4g from_med %.4g ms  per_member_elem_step "
          "from_min %.4g from_med %.4g ns  fixed from_min %.4g ms | cpu per_member_elem_step "
          "from_min %.4g from_med %.4g ns  fixed from_min %.4g ms\n",
          tag.c_str(), step_min * 1e3, step_med * 1e3, step_min * 1e9 / work, step_med * 1e9 / work,
          (a.min - c.s1 * step_min) * 1e3, cstep_min * 1e9 / work, cstep_med * 1e9 / work,
          (a.cpu_min - c.s1 * cstep_min) * 1e3);
    std::fflush(stdout);
  }
}

// ---- LETKF: per column (both elements) as a function of k and the local observations ----
void section_letkf(int reps) {
  omp_set_num_threads(1);
  struct Case {
    int n, k, rows;
  };
  const std::vector<Case> cases = {{64, 10, 16}, {64, 20, 16}, {64, 40, 8},
                                   {128, 10, 4}, {128, 20, 4}, {128, 40, 2}};
  for (const Case& c : cases) {
    const bench::Problem p = bench::make_problem(c.n, c.k);
    const std::size_t n2 = static_cast<std::size_t>(c.n) * c.n, dim = 2 * n2;
    const std::size_t po = p.obs.size();
    std::vector<double> hx(static_cast<std::size_t>(c.k) * po);
    for (int m = 0; m < c.k; ++m)
      p.obs.apply(std::span<const double>(p.prior).subspan(m * dim, dim),
                  std::span<double>(hx).subspan(m * po, po));
    // A band of rows in the middle of the domain (the cost per column is position-free on the
    // periodic plane with every point observed).
    const std::size_t c0 = static_cast<std::size_t>(c.n / 2) * c.n, c1 = c0 + c.rows * c.n;
    const std::size_t nc = c1 - c0;
    std::vector<double> cols(static_cast<std::size_t>(c.k) * 2 * nc), post(cols.size());
    for (int m = 0; m < c.k; ++m)
      for (int lev = 0; lev < 2; ++lev)
        std::copy_n(p.prior.data() + m * dim + lev * n2 + c0, nc, cols.data() + (m * 2 + lev) * nc);
    filters::LetkfAnalysis letkf;
    filters::LetkfColumnStats st;
    const Stats s = repeat(reps, [&] {
      st = {};
      letkf.analyse_columns(cols, hx, c.k, p.obs, c0, c1, post, &st);
    });
    const double ploc = st.elements ? static_cast<double>(st.local_observations) / st.elements : 0;
    print("letkf", "per_column_N" + std::to_string(c.n) + "_K" + std::to_string(c.k), s,
          1e6 / static_cast<double>(nc), "us",
          "p_loc=" + fmt("%.1f", ploc) + " columns=" + std::to_string(nc));
  }
}

// ---- Per-rank copies of the analysis stage (1 rank): h(x), transposes, mean/spread ----
void section_local(int reps) {
  for (auto [n, k] : {std::pair{64, 20}, std::pair{128, 40}}) {
    const bench::Problem p = bench::make_problem(n, k);
    worker::DistributedEnsemble ens(MPI_COMM_WORLD, k, p.grid.grid());
    std::copy(p.prior.begin() + static_cast<std::ptrdiff_t>(ens.first_member() * ens.state_size()),
              p.prior.begin() + static_cast<std::ptrdiff_t>(
                                    (ens.first_member() + ens.local_members()) * ens.state_size()),
              ens.local_states().begin());
    const std::string tag =
        "_N" + std::to_string(n) + "_K" + std::to_string(k) + "_R" + std::to_string(g_size);
    std::vector<double> cols;
    const Stats t1 = repeat(reps, [&] {
      MPI_Barrier(MPI_COMM_WORLD);
      ens.to_columns(cols);
    });
    const Stats t2 = repeat(reps, [&] {
      MPI_Barrier(MPI_COMM_WORLD);
      ens.from_columns(cols);
    });
    const Stats t3 = repeat(reps, [&] {
      MPI_Barrier(MPI_COMM_WORLD);
      auto hx = ens.observe_all(p.obs);
      if (hx.empty()) std::puts("");
    });
    const double bytes = 8.0 * k * 2.0 * n * n;
    print("local", "to_columns" + tag, t1, 1e3, "ms", "ensemble_MB=" + fmt("%.2f", bytes / 1e6));
    print("local", "from_columns" + tag, t2, 1e3, "ms");
    print("local", "observe_all" + tag, t3, 1e3, "ms", "p=" + std::to_string(p.obs.size()));
  }
}

// ---- The rest of an analysis stage, per rank (1 process): the observation space, the
// mean/spread of the ensemble, rank 0's innovation diagnostics, and one core's copy bandwidth ----
void section_serial(int reps) {
  for (auto [n, k] : {std::pair{64, 20}, std::pair{128, 40}}) {
    const bench::Problem p = bench::make_problem(n, k);
    const std::string tag = "_N" + std::to_string(n) + "_K" + std::to_string(k);
    // ObservationSpace from an ObservationSet of every grid point (built on every rank, every
    // cycle).
    obs::ObservationSet set;
    for (std::size_t o = 0; o < p.obs.size(); ++o)
      set.push_back({0.0, p.obs.level()[o], p.obs.x_m()[o], p.obs.y_m()[o], p.obs.value()[o],
                     p.obs.error_sd()[o], p.obs.op()[o], static_cast<std::uint64_t>(o)});
    const Stats so = repeat(reps, [&] {
      obs::ObservationSpace sp(p.grid, set);
      if (sp.size() == 0) std::puts("");
    });
    print("serial", "observation_space" + tag, so, 1e3, "ms", "p=" + std::to_string(set.size()));
    // Mean and spread over k members of 2 N^2 elements (column_mean_spread's compute).
    const std::size_t dim = p.grid.state_size();
    std::vector<double> mean(dim), spread(dim);
    const Stats sm = repeat(reps, [&] {
      std::fill(mean.begin(), mean.end(), 0.0);
      std::fill(spread.begin(), spread.end(), 0.0);
      for (int m = 0; m < k; ++m)
        for (std::size_t e = 0; e < dim; ++e)
          mean[e] += p.prior[m * dim + e];
      for (auto& v : mean)
        v /= k;
      for (int m = 0; m < k; ++m)
        for (std::size_t e = 0; e < dim; ++e) {
          const double d = p.prior[m * dim + e] - mean[e];
          spread[e] += d * d;
        }
      for (auto& v : spread)
        v = std::sqrt(v / (k - 1));
    });
    print("serial", "mean_spread" + tag, sm, 1e9 / (static_cast<double>(k) * dim), "ns/value");
    // Rank 0's innovation statistics over k x p values of h(x) (cycle_engine.cpp, serial).
    const std::size_t po = p.obs.size();
    std::vector<double> hx(static_cast<std::size_t>(k) * po, 1.0);
    double sink = 0;
    const Stats sd = repeat(reps, [&] {
      double dsum = 0, hvar = 0;
      for (std::size_t o = 0; o < po; ++o) {
        double hm = 0;
        for (int m = 0; m < k; ++m)
          hm += hx[m * po + o];
        hm /= k;
        double v = 0;
        for (int m = 0; m < k; ++m)
          v += (hx[m * po + o] - hm) * (hx[m * po + o] - hm);
        hvar += v;
        dsum += p.obs.value()[o] - hm;
      }
      sink += dsum + hvar;
    });
    print("serial", "rank0_innovations" + tag, sd, 1e9 / (static_cast<double>(k) * po), "ns/value",
          sink == 42 ? "." : "");
  }
  // Triad a = b + s c over 3 x 32 MB (one core's streaming bandwidth).
  const std::size_t len = 4u << 20;
  std::vector<double> a(len), b(len, 1.0), c(len, 2.0);
  const Stats st = repeat(reps, [&] {
    for (std::size_t i = 0; i < len; ++i)
      a[i] = b[i] + 3.0 * c[i];
  });
  const Stats bw{24.0 * len / st.max,     24.0 * len / st.med,     24.0 * len / st.min,
                 24.0 * len / st.cpu_max, 24.0 * len / st.cpu_med, 24.0 * len / st.cpu_min};
  print("serial", "triad_bandwidth", bw, 1e-9, "GB/s", "(min/med/max of the rate)");
}

// ---- MPI: alpha / beta from message sizes; the cycle's own collectives ----
void section_mpi(int reps) {
  const int r = g_size;
  // Alltoallv with `bytes` per destination (what a transpose sends: K/R members x 2 N^2/R).
  for (std::size_t bytes : {8ul, 1024ul, 65536ul, 1ul << 20, 8ul << 20}) {
    const std::size_t count = bytes / 8;
    std::vector<double> send(count * r, 1.0), recv(count * r);
    std::vector<int> cnt(r, static_cast<int>(count)), dsp(r);
    for (int i = 0; i < r; ++i)
      dsp[i] = static_cast<int>(i * count);
    const int inner = bytes <= 65536 ? 200 : 5;
    const Stats s = repeat(reps, [&] {
      MPI_Barrier(MPI_COMM_WORLD);
      for (int i = 0; i < inner; ++i)
        MPI_Alltoallv(send.data(), cnt.data(), dsp.data(), MPI_DOUBLE, recv.data(), cnt.data(),
                      dsp.data(), MPI_DOUBLE, MPI_COMM_WORLD);
    });
    print("mpi", "alltoallv_per_dest_" + std::to_string(bytes) + "B", s, 1e6 / inner, "us",
          "R=" + std::to_string(r));
  }
  // Allreduce: one double (EnSF stopping rule, LETKF counts), and N K^2 doubles (EnSF
  // standard mode's per-row distances, every step).
  for (std::size_t count : {1ul, 25600ul, 102400ul}) {
    std::vector<double> v(count, 1.0);
    const int inner = count == 1 ? 2000 : 20;
    const Stats s = repeat(reps, [&] {
      MPI_Barrier(MPI_COMM_WORLD);
      for (int i = 0; i < inner; ++i)
        MPI_Allreduce(MPI_IN_PLACE, v.data(), static_cast<int>(count), MPI_DOUBLE, MPI_MAX,
                      MPI_COMM_WORLD);
    });
    print("mpi", "allreduce_" + std::to_string(count * 8) + "B", s, 1e6 / inner, "us",
          "R=" + std::to_string(r));
  }
  // Gatherv of 4 values per column to rank 0 (column_mean_spread), N = 64 and 256.
  for (int n : {64, 256}) {
    const std::size_t total = 4ul * n * n;
    std::vector<int> cnt(r), dsp(r);
    for (int i = 0; i < r; ++i) {
      const auto [b, e] = worker::column_range(core::Grid{2, n, n, 1.0, 1.0}, r, i);
      cnt[i] = static_cast<int>(4 * (e - b));
      dsp[i] = static_cast<int>(4 * b);
    }
    std::vector<double> mine(cnt[g_rank], 1.0), all(g_rank == 0 ? total : 0);
    const Stats s = repeat(reps, [&] {
      MPI_Barrier(MPI_COMM_WORLD);
      for (int i = 0; i < 20; ++i)
        MPI_Gatherv(mine.data(), cnt[g_rank], MPI_DOUBLE, all.data(), cnt.data(), dsp.data(),
                    MPI_DOUBLE, 0, MPI_COMM_WORLD);
    });
    print("mpi", "gather_mean_spread_N" + std::to_string(n), s, 1e6 / 20, "us",
          "bytes=" + std::to_string(total * 8));
  }
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_size);
  const std::string what = argc > 1 ? argv[1] : "";
  const int reps = argc > 2 ? std::max(1, std::atoi(argv[2])) : 5;
  int rc = 0;
  if (what == "forecast") {
    section_forecast(reps);
  } else if (what == "vit") {
    section_vit(reps);
  } else if (what == "ensf") {
    section_ensf(reps);
  } else if (what == "letkf") {
    section_letkf(reps);
  } else if (what == "serial") {
    section_serial(reps);
  } else if (what == "local") {
    section_local(reps);
  } else if (what == "mpi") {
    section_mpi(reps);
    section_local(reps);
  } else {
    if (g_rank == 0)
      std::fprintf(stderr,
                   "usage: scaling_inputs forecast|vit|ensf|letkf|serial|local|mpi [reps]\n");
    rc = 2;
  }
  MPI_Finalize();
  return rc;
}
