// Timings of the GPU paths (kernels/hip, docs/hip.md), or of the same work on the CPU, as CSV:
// one LETKF and one EnSF analysis of the bench problem (bench/analysis_problem.hpp), the ViT
// forward pass, whole cycles through CycleEngine on one process, and the device's copy
// bandwidth (the practical memory ceiling the other rates are read against). Plain main(), no
// Google Benchmark: a script runs it on a bare GPU machine, which needs nothing but this binary
// and the ViT weights.
//
//   gpu_timing --device gpu --n 64 --members 20 --what letkf,ensf,vit,cycle,copy
//              --repeats 5 --warmup 1 --csv gpu.csv --vit-weights configs/weights/vit-n64.h5
//   gpu_timing --device cpu --threads 2 ...          the same work on the CPU
//
// Cases (--what) and their entries:
//   letkf  gpu: analyse (host buffers: upload, h(x), columns, download, each call allocating)
//              and analyse_device (the ensemble already on the device; h(x) of the innovation
//              diagnostics still goes down); cpu: LetkfAnalysis::analyse. The configuration's
//              default LETKF settings (L_h 2200 km, RTPS 0.3).
//   ensf   the same for EnSF paper mode with the configuration's defaults (stopping rule on:
//          the steps taken are in the note; the same context every call, so the same steps).
//   vit    gpu: VitForwardHip::forward_device on device buffers; cpu: surrogate::Vit::forward.
//          `members` states of N(0, 1) (normalised units). Only for the weights' N (64).
//   cycle  vit+ensf (N = 64 only) and sqg+letkf (any N): CycleEngine with Backend::kGpu or
//          kCpu on worker::Comm::single(); one timed call = forecast_cycle() + analyse(), the
//          same observation set (the "linear" experiment of a short in-memory nature run)
//          every cycle. The note gives the medians of CycleRecord's forecast and analysis
//          seconds and, on the GPU, the host <-> device bytes of the last cycle.
//   copy   gpu: hip::detail::copy_on_device between two buffers of max(--copy-mib MiB,
//          4 x members x state x 8 bytes), halved until both allocations succeed; cpu:
//          std::memcpy of --copy-mib MiB in --threads chunks on as many OpenMP threads.
//
// Timing: std::chrono::steady_clock around each call; on the GPU every timed call ends with
// hip::detail::synchronize (the analyses synchronise on return already; forward_device and a
// device-to-device copy are only queued). `warmup` untimed calls first (they absorb context
// creation, first allocations, the EnSF's stored initial spread). Each row reports the median
// and minimum over the timed calls. Budget per row: warm-up stops once half of --max-seconds
// is spent, and no further repeat starts when the previous one would end past --max-seconds
// (at least one timed call always runs; `repeats` is the count actually timed). A watchdog
// thread ends the program (exit 124, after a `timeout` row) when one row, setup included, runs
// past 3 x --max-seconds + 60 s.
//
// Work models (the `model` column; simple lower bounds, except the ViT's FLOPs, which are
// exact). Rates are bytes / median and flops / median. k members, S = 2 N^2 state elements,
// p observations, E = S local analyses:
//   letkf  bytes 8 k S (prior read) + 8 k S (posterior written) + 2 x 8 k p (h(x) written and
//          read); flops E (k^2 p_loc + 10 k^3): the symmetric k x k matrix C = Y^T R^-1 Y
//          from p_loc local observations (the filter's mean per element) and ~10 k^3 for the
//          eigensolver, per element.
//   ensf   per pseudo-time step: 24 B per member x element (z read and written, the paired
//          prior member read) and 13 flops (the Euler-Maruyama update with the linear paper
//          score); the normal generator (Philox + Box-Muller), the stopping rule's member mean
//          and the set-up are not counted. Steps = the analysis' ensf_steps.
//   vit    every matrix product of the forward (patch embedding, per block qkv, q k^T, p v,
//          projection, fc1, fc2; head) as C[M x N] = A[M x K] B[K x N]: flops 2 M N K, bytes
//          4 (M K + K N + M N), i.e. weights and activations once per layer; norms, GELU,
//          softmax and the residual adds are not counted.
//   cycle  vit+ensf: the vit and ensf models above; sqg+letkf: the letkf model (the SQG
//          forecast, on the CPU in both backends, is not counted).
//   copy   bytes 2 x size (read + written); no flops.
#include <omp.h>

#include <CLI/CLI.hpp>
#include <Eigen/Core>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "analysis_problem.hpp"
#include "comm.hpp"
#include "config/config.hpp"
#include "cycle_engine.hpp"
#include "filters/ensf.hpp"
#include "filters/letkf.hpp"
#include "hip/device.hpp"
#include "hip/device_memory.hpp"
#include "hip/ensf_hip.hpp"
#include "hip/letkf_hip.hpp"
#include "hip/vit_hip.hpp"
#include "io/fields.hpp"
#include "obs/experiments.hpp"
#include "obs/observation_space.hpp"
#include "sqg/nature_run.hpp"
#include "sqg/sqg_model.hpp"
#include "surrogate/checkpoint.hpp"
#include "surrogate/trainer.hpp"
#include "surrogate/vit.hpp"

namespace {

using namespace rtda;
using Clock = std::chrono::steady_clock;

constexpr const char* kHeader =
    "case,entry,device,n,members,observations,repeats,median_ms,min_ms,bytes,flops,gb_per_s,"
    "gflop_per_s,model,note";

struct Options {
  std::string device = "gpu";
  int n = 64;
  int members = 20;
  long observations = 0;  // 0: every grid point of both levels (2 N^2)
  std::vector<std::string> what = {"letkf", "ensf", "vit", "cycle", "copy"};
  int repeats = 5;
  int warmup = 1;
  std::string csv = "gpu_timing.csv";
  std::string vit_weights = "configs/weights/vit-n64.h5";
  double max_seconds = 60;
  int threads = 0;  // 0: every core
  int copy_mib = 1024;
};

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t h = v.size() / 2;
  return v.size() % 2 ? v[h] : 0.5 * (v[h - 1] + v[h]);
}

// One CSV row: a case's entry, its timed calls and its work model.
struct Row {
  std::string case_name, entry;
  std::size_t observations = 0;
  std::vector<double> ms;  // one per timed call; empty for a skipped or failed entry
  double bytes = 0, flops = 0;
  std::string model, note;
};

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) {
    if (c == '"') q += '"';
    q += c == '\n' || c == '\r' ? ' ' : c;
  }
  return q + "\"";
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

void append_note(std::string& note, const std::string& more) {
  if (more.empty()) return;
  if (!note.empty()) note += "; ";
  note += more;
}

// The CSV file and the human-readable lines on stdout; every row is flushed as it is written,
// so a run that is stopped keeps the rows before it.
class Report {
 public:
  Report(const std::string& path, std::string device, int n, int members)
      : out_(path), device_(std::move(device)), n_(n), members_(members) {
    if (!out_) throw std::runtime_error("cannot write --csv " + path);
    out_ << kHeader << '\n' << std::flush;
  }

  void write(const Row& r) {
    std::lock_guard lock(mutex_);
    const bool timed = !r.ms.empty();
    const double med = median(r.ms);
    const double mn = timed ? *std::min_element(r.ms.begin(), r.ms.end()) : 0;
    const double gbs = timed && med > 0 ? r.bytes / (med * 1e-3) * 1e-9 : 0;
    const double gfs = timed && med > 0 ? r.flops / (med * 1e-3) * 1e-9 : 0;
    const auto num = [&](const char* f, double v) { return timed ? fmt(f, v) : std::string(); };
    out_ << csv_field(r.case_name) << ',' << csv_field(r.entry) << ',' << device_ << ',' << n_
         << ',' << members_ << ',' << r.observations << ',' << r.ms.size() << ','
         << num("%.6g", med) << ',' << num("%.6g", mn) << ',' << num("%.0f", r.bytes) << ','
         << num("%.0f", r.flops) << ',' << num("%.6g", gbs) << ',' << num("%.6g", gfs) << ','
         << csv_field(r.model) << ',' << csv_field(r.note) << '\n'
         << std::flush;
    std::printf("%-6s %-15s %s N=%d k=%d p=%zu", r.case_name.c_str(), r.entry.c_str(),
                device_.c_str(), n_, members_, r.observations);
    if (timed) {
      std::printf("  median %.3f ms  min %.3f ms  (%zu)", med, mn, r.ms.size());
      if (r.bytes > 0) std::printf("  %.4g GB/s", gbs);
      if (r.flops > 0) std::printf("  %.4g GFLOP/s", gfs);
    }
    if (!r.note.empty()) std::printf("  [%s]", r.note.c_str());
    std::printf("\n");
    std::fflush(stdout);
  }

 private:
  std::mutex mutex_;
  std::ofstream out_;
  std::string device_;
  int n_, members_;
};

// Ends the program when one row (its set-up included) runs past its hard limit: a hung
// kernel or a far too large case must not eat the GPU machine's whole lease.
class Watchdog {
 public:
  Watchdog(Report& report, double limit_s) : report_(report), limit_s_(limit_s) {
    thread_ = std::thread([this] { watch(); });
  }
  ~Watchdog() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  void begin(const std::string& case_name, const std::string& entry) {
    std::lock_guard lock(mutex_);
    case_ = case_name;
    entry_ = entry;
    deadline_ = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                   std::chrono::duration<double>(limit_s_));
    armed_ = true;
    cv_.notify_all();
  }
  void end() {
    std::lock_guard lock(mutex_);
    armed_ = false;
  }

 private:
  void watch() {
    std::unique_lock lock(mutex_);
    while (!stop_) {
      if (!armed_) {
        cv_.wait(lock);
        continue;
      }
      if (Clock::now() < deadline_) {
        cv_.wait_until(lock, deadline_);
        continue;
      }
      Row r;
      r.case_name = case_;
      r.entry = entry_;
      r.note = "timeout: ran past the hard limit of " + fmt("%.0f", limit_s_) +
               " s (3 x --max-seconds + 60); program stopped";
      report_.write(r);
      std::fprintf(stderr, "gpu_timing: %s %s: %s\n", case_.c_str(), entry_.c_str(),
                   r.note.c_str());
      std::fflush(stderr);
      std::_Exit(124);
    }
  }

  Report& report_;
  double limit_s_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::thread thread_;
  bool stop_ = false, armed_ = false;
  std::string case_, entry_;
  Clock::time_point deadline_;
};

struct Context {
  Options opt;
  bool gpu = false;
  config::Config defaults;  // the configuration's defaults (filter settings)
  Report* report = nullptr;
  Watchdog* watchdog = nullptr;
  int errors = 0;
};

// `warmup` untimed calls, then up to `repeats` timed ones within the budget (see the top).
std::vector<double> time_calls(const Context& ctx, const std::function<void()>& call,
                               std::string& note) {
  const Options& o = ctx.opt;
  const auto start = Clock::now();
  int warmed = 0;
  for (; warmed < o.warmup; ++warmed) {
    if (warmed > 0 && seconds_since(start) > 0.5 * o.max_seconds) break;
    call();
    if (ctx.gpu) hip::detail::synchronize("a warm-up call");
  }
  if (warmed < o.warmup)
    append_note(note, "max-seconds: " + std::to_string(warmed) + " of " + std::to_string(o.warmup) +
                          " warm-up calls");
  std::vector<double> ms;
  for (int r = 0; r < o.repeats; ++r) {
    if (r > 0 && seconds_since(start) + ms.back() * 1e-3 > o.max_seconds) break;
    const auto t0 = Clock::now();
    call();
    if (ctx.gpu) hip::detail::synchronize("a timed call");
    ms.push_back(seconds_since(t0) * 1e3);
  }
  if (static_cast<int>(ms.size()) < o.repeats)
    append_note(note, "max-seconds: " + std::to_string(ms.size()) + " of " +
                          std::to_string(o.repeats) + " repeats");
  return ms;
}

// ---------------------------------------------------------------- the work models

struct Work {
  double bytes = 0, flops = 0;
  std::string model;
};

Work letkf_work(int k, std::size_t state, std::size_t p, double local_obs) {
  const double kk = k, s = static_cast<double>(state), pp = static_cast<double>(p);
  return {8 * kk * s * 2 + 2 * 8 * kk * pp, s * (kk * kk * local_obs + 10 * kk * kk * kk),
          "letkf: bytes 16kS+16kp; flops S(k^2 p_loc+10k^3) with p_loc " + fmt("%.1f", local_obs)};
}

Work ensf_work(int k, std::size_t state, double steps) {
  const double ke = static_cast<double>(k) * static_cast<double>(state);
  return {
      24 * ke * steps, 13 * ke * steps,
      "ensf: per step 24 B and 13 flops per member x element; " + fmt("%.0f", steps) + " steps"};
}

// Every matrix product of the ViT forward for a batch (see the top).
Work vit_work(const surrogate::VitConfig& c, int batch) {
  const double b = batch;
  const double t = static_cast<double>(c.grid_n / c.patch) * (c.grid_n / c.patch);
  const double d = c.dim, pd = 2.0 * c.patch * c.patch, hidden = c.mlp_ratio * d;
  const double dh = d / c.heads;
  Work w;
  // count products of [m x kk] [kk x nn]
  const auto gemm = [&](double count, double m, double kk, double nn) {
    w.flops += count * 2 * m * nn * kk;
    w.bytes += count * 4 * (m * kk + kk * nn + m * nn);
  };
  const double rows = b * t;
  gemm(1, rows, pd, d);  // patch embedding (joint)
  for (int l = 0; l < c.depth; ++l) {
    gemm(1, rows, d, 3 * d);      // qkv
    gemm(b * c.heads, t, dh, t);  // q k^T
    gemm(b * c.heads, t, t, dh);  // p v
    gemm(1, rows, d, d);          // projection
    gemm(1, rows, d, hidden);     // fc1
    gemm(1, rows, hidden, d);     // fc2
  }
  gemm(1, rows, d, pd);  // head
  w.model = "vit: every GEMM 2MNK flops and 4(MK+KN+MN) bytes";
  return w;
}

// ---------------------------------------------------------------- the problem

// The bench problem; --observations below 2 N^2 keeps the observations at positions
// floor(i 2N^2 / p), i < p (a deterministic subset spread over both levels).
bench::Problem problem(const Options& o, std::string& note) {
  bench::Problem p = bench::make_problem(o.n, o.members);
  const std::size_t full = p.obs.size();
  if (o.observations > 0 && static_cast<std::size_t>(o.observations) < full) {
    const std::size_t want = static_cast<std::size_t>(o.observations);
    std::vector<std::size_t> keep(want);
    for (std::size_t i = 0; i < want; ++i)
      keep[i] = i * full / want;
    p.obs = p.obs.subset(keep);
    note = "observations: a deterministic subset of the " + std::to_string(full) + " grid points";
  } else if (o.observations > 0 && static_cast<std::size_t>(o.observations) > full) {
    note = "observations: capped at every grid point (" + std::to_string(full) + ")";
  }
  return p;
}

// A row per entry; an exception becomes the row's note (and the exit status 1).
void run_entry(Context& ctx, const std::string& case_name, const std::string& entry,
               const std::function<void(Row&)>& body) {
  Row r;
  r.case_name = case_name;
  r.entry = entry;
  ctx.watchdog->begin(case_name, entry);
  try {
    body(r);
  } catch (const std::exception& e) {
    r.ms.clear();
    append_note(r.note, std::string("error: ") + e.what());
    ++ctx.errors;
  }
  ctx.watchdog->end();
  ctx.report->write(r);
}

void skip(Context& ctx, const std::string& case_name, const std::string& entry,
          const std::string& why) {
  Row r;
  r.case_name = case_name;
  r.entry = entry;
  r.note = "skipped: " + why;
  ctx.report->write(r);
}

// ---------------------------------------------------------------- letkf, ensf

void set_work(Row& r, const Work& w) {
  r.bytes = w.bytes;
  r.flops = w.flops;
  r.model = w.model;
}

void run_letkf(Context& ctx) {
  const Options& o = ctx.opt;
  const int k = o.members;
  const auto entry = [&](const std::string& name, auto&& make_call) {
    run_entry(ctx, "letkf", name, [&](Row& r) {
      std::string note;
      const bench::Problem p = problem(o, note);
      r.observations = p.obs.size();
      const std::size_t dim = p.grid.state_size();
      filters::AnalysisDiagnostics diag;
      const std::function<void()> call = make_call(p, diag);
      r.ms = time_calls(ctx, call, r.note);
      append_note(r.note, note);
      set_work(r, letkf_work(k, dim, p.obs.size(), diag.extra["letkf_mean_local_obs"]));
    });
  };
  const filters::LetkfSettings s = ctx.defaults.letkf;
  if (!ctx.gpu) {
    entry("analyse", [&](const bench::Problem& p, filters::AnalysisDiagnostics& diag) {
      auto letkf = std::make_shared<filters::LetkfAnalysis>(s);
      auto post = std::make_shared<std::vector<double>>(p.prior.size());
      const std::size_t dim = p.grid.state_size();
      return [&p, &diag, letkf, post, k, dim] {
        diag = letkf->analyse({k, dim, p.prior}, p.obs, {}, {k, dim, *post});
      };
    });
    return;
  }
  entry("analyse", [&](const bench::Problem& p, filters::AnalysisDiagnostics& diag) {
    auto letkf = std::make_shared<hip::LetkfAnalysisHip>(s);
    auto post = std::make_shared<std::vector<double>>(p.prior.size());
    const std::size_t dim = p.grid.state_size();
    return [&p, &diag, letkf, post, k, dim] {
      diag = letkf->analyse({k, dim, p.prior}, p.obs, {}, {k, dim, *post});
    };
  });
  entry("analyse_device", [&](const bench::Problem& p, filters::AnalysisDiagnostics& diag) {
    auto letkf = std::make_shared<hip::LetkfAnalysisHip>(s);
    auto prior = std::make_shared<hip::detail::DeviceArray<double>>(p.prior, "the prior");
    auto post = std::make_shared<hip::detail::DeviceArray<double>>(p.prior.size(), "the posterior");
    return [&p, &diag, letkf, prior, post, k] {
      diag = letkf->analyse_device(k, prior->get(), p.obs, post->get());
    };
  });
}

filters::EnsfSettings ensf_settings(const Context& ctx) {
  // The configuration's defaults are paper mode; insist on it should they ever change.
  filters::EnsfSettings s = ctx.defaults.ensf;
  if (s.mode != filters::EnsfMode::kPaper) s = filters::EnsfSettings::paper();
  return s;
}

void run_ensf(Context& ctx) {
  const Options& o = ctx.opt;
  const int k = o.members;
  const filters::AnalysisContext actx{7, 1};  // the same noise every call: the same steps
  const auto entry = [&](const std::string& name, auto&& make_call) {
    run_entry(ctx, "ensf", name, [&](Row& r) {
      std::string note;
      const bench::Problem p = problem(o, note);
      r.observations = p.obs.size();
      const std::size_t dim = p.grid.state_size();
      filters::AnalysisDiagnostics diag;
      const std::function<void()> call = make_call(p, diag);
      r.ms = time_calls(ctx, call, r.note);
      append_note(r.note, note);
      const double steps = diag.extra["ensf_steps"];
      append_note(r.note, "paper mode; " + fmt("%.0f", steps) + " pseudo-time steps");
      set_work(r, ensf_work(k, dim, steps));
    });
  };
  const filters::EnsfSettings s = ensf_settings(ctx);
  if (!ctx.gpu) {
    entry("analyse", [&](const bench::Problem& p, filters::AnalysisDiagnostics& diag) {
      auto ensf = std::make_shared<filters::EnsfAnalysis>(s);
      auto post = std::make_shared<std::vector<double>>(p.prior.size());
      const std::size_t dim = p.grid.state_size();
      return [&p, &diag, ensf, post, k, dim, actx] {
        diag = ensf->analyse({k, dim, p.prior}, p.obs, actx, {k, dim, *post});
      };
    });
    return;
  }
  entry("analyse", [&](const bench::Problem& p, filters::AnalysisDiagnostics& diag) {
    auto ensf = std::make_shared<hip::EnsfAnalysisHip>(s);
    auto post = std::make_shared<std::vector<double>>(p.prior.size());
    const std::size_t dim = p.grid.state_size();
    return [&p, &diag, ensf, post, k, dim, actx] {
      diag = ensf->analyse({k, dim, p.prior}, p.obs, actx, {k, dim, *post});
    };
  });
  entry("analyse_device", [&](const bench::Problem& p, filters::AnalysisDiagnostics& diag) {
    auto ensf = std::make_shared<hip::EnsfAnalysisHip>(s);
    auto prior = std::make_shared<hip::detail::DeviceArray<double>>(p.prior, "the prior");
    auto post = std::make_shared<hip::detail::DeviceArray<double>>(p.prior.size(), "the posterior");
    return [&p, &diag, ensf, prior, post, k, actx] {
      diag = ensf->analyse_device(k, prior->get(), p.obs, actx, post->get());
    };
  });
}

// ---------------------------------------------------------------- vit

struct LoadedVit {
  std::unique_ptr<surrogate::Vit> vit;
  surrogate::VitConfig config;
};

surrogate::VitConfig vit_architecture(const std::string& path) {
  return surrogate::vit_config_from(surrogate::read_surrogate_architecture(path));
}

LoadedVit load_vit(const std::string& path) {
  LoadedVit v;
  v.config = vit_architecture(path);
  v.vit = std::make_unique<surrogate::Vit>(v.config);
  surrogate::ParameterList params;
  v.vit->collect(params);
  surrogate::load_surrogate(path, params);
  return v;
}

// Why the ViT cannot run at this N ("" when it can): a skip for another N than the weights'
// (or than 64 when they cannot be read); unreadable weights at N = 64 throw, an error.
std::string vit_unusable(const Options& o) {
  surrogate::VitConfig c;
  try {
    c = vit_architecture(o.vit_weights);
  } catch (const std::exception& e) {
    if (o.n == 64) throw;
    return "the ViT runs at N = 64 only (--n " + std::to_string(o.n) + "; --vit-weights " +
           o.vit_weights + " not read: " + e.what() + ")";
  }
  if (c.grid_n != o.n)
    return "--vit-weights " + o.vit_weights + " is trained for N = " + std::to_string(c.grid_n) +
           " (--n " + std::to_string(o.n) + ")";
  return "";
}

// The skip row of a ViT entry and true, or false when it can run; unreadable weights at the
// weights' N make an error row.
bool skip_vit(Context& ctx, const std::string& case_name, const std::string& entry) {
  std::string why;
  try {
    why = vit_unusable(ctx.opt);
  } catch (const std::exception& e) {
    Row r;
    r.case_name = case_name;
    r.entry = entry;
    r.note = std::string("error: --vit-weights ") + ctx.opt.vit_weights + ": " + e.what();
    ++ctx.errors;
    ctx.report->write(r);
    return true;
  }
  if (why.empty()) return false;
  skip(ctx, case_name, entry, why);
  return true;
}

void run_vit(Context& ctx) {
  const Options& o = ctx.opt;
  const std::string entry = ctx.gpu ? "forward_device" : "forward";
  if (skip_vit(ctx, "vit", entry)) return;
  run_entry(ctx, "vit", entry, [&](Row& r) {
    LoadedVit v = load_vit(o.vit_weights);
    const int b = o.members;
    const int s = v.vit->state_size();
    surrogate::Mat x(b, s);
    std::mt19937_64 rng(1);
    std::normal_distribution<float> g;
    for (Eigen::Index i = 0; i < x.size(); ++i)
      x.data()[i] = g(rng);
    if (ctx.gpu) {
      hip::VitForwardHip fwd(*v.vit);
      const std::vector<float> host(x.data(), x.data() + x.size());
      hip::detail::DeviceArray<float> in(host, "the ViT input"), out(host.size(), "the ViT output");
      r.ms = time_calls(
          ctx, [&] { fwd.forward_device(in.get(), out.get(), b); }, r.note);
    } else {
      Eigen::setNbThreads(o.threads);
      r.ms = time_calls(
          ctx,
          [&] {
            const surrogate::Mat y = v.vit->forward(x);
            if (!std::isfinite(y(0, 0))) throw std::runtime_error("the ViT output is not finite");
          },
          r.note);
    }
    Work w = vit_work(v.config, b);
    if (v.config.embedding != surrogate::PatchEmbedding::kJoint) {
      w.flops = static_cast<double>(b) * static_cast<double>(v.vit->flops_per_sample());
      w.model += " (per-level embedding: flops from Vit::flops_per_sample; bytes as joint)";
    }
    set_work(r, w);
    append_note(r.note, "batch " + std::to_string(b) + "; " +
                            std::string(surrogate::kPatchEmbeddingNames.name(v.config.embedding)) +
                            " embedding; float32");
  });
}

// ---------------------------------------------------------------- cycle

config::Config cycle_config(const Options& o, bool vit) {
  std::vector<std::string> set = {
      "model.N=" + std::to_string(o.n), "ensemble.members=" + std::to_string(o.members),
      "experiment.observations=linear", "model.fft_planning=estimate",
      "model.fft_wisdom_file=",         "model.threads=" + std::to_string(o.threads),
      "nature.spinup_days=5",           "nature.states=2"};
  if (vit) {
    set.push_back("model.kind=vit");
    set.push_back("surrogate.weights=" + o.vit_weights);
  }
  return config::load(std::nullopt, set);
}

// A short nature run in memory (the cycle tests' make_nature).
io::NatureRun make_nature(const config::Config& cfg) {
  io::NatureRun nature;
  nature.params = cfg.model.sqg;
  sqg::SqgModel<double> model(cfg.model.sqg, cfg.model.fft_planning);
  sqg::run_nature(model, cfg.nature, [&](int, double t, std::span<const double> q) {
    nature.times_seconds.push_back(t);
    nature.q.insert(nature.q.end(), q.begin(), q.end());
  });
  return nature;
}

// The observation rows at positions floor(i size / want), i < want.
obs::ObservationSet subset_rows(const obs::ObservationSet& set, std::size_t want) {
  obs::ObservationSet out;
  out.experiment = set.experiment;
  out.seed = set.seed;
  out.cycle_time_seconds = set.cycle_time_seconds;
  out.shock_sd = set.shock_sd;
  out.shock = set.shock;
  for (std::size_t i = 0; i < want; ++i)
    out.push_back(set.at(i * set.size() / want));
  return out;
}

double diagnostic(const worker::CycleOutcome& out, const std::string& name) {
  const auto it = out.diagnostics.find(name);
  return it == out.diagnostics.end() ? 0.0 : it->second.value;
}

void run_cycle_entry(Context& ctx, const std::string& entry, bool vit) {
  const Options& o = ctx.opt;
  run_entry(ctx, "cycle", entry, [&](Row& r) {
    const config::Config cfg = cycle_config(o, vit);
    const io::NatureRun nature = make_nature(cfg);
    const std::size_t last = nature.size() - 1;
    obs::ObserveSettings observe = cfg.observe;
    observe.seed = cfg.experiment.seed;
    obs::ObservationSet set;
    obs::append_cycle_observations(cfg.model.sqg, nature.state(last), nature.times_seconds[last],
                                   last, obs::experiment_from_string(cfg.experiment.observations),
                                   observe, set);
    if (o.observations > 0 && static_cast<std::size_t>(o.observations) < set.size()) {
      append_note(r.note, "observations: a deterministic subset of the " +
                              std::to_string(set.size()) + " grid points");
      set = subset_rows(set, static_cast<std::size_t>(o.observations));
    }
    worker::CycleEngine engine(worker::Comm::single(), cfg,
                               ctx.gpu ? device::Backend::kGpu : device::Backend::kCpu);
    engine.start_from_nature(nature);
    const std::string filter = vit ? "ensf" : "letkf";
    const double cycle_s = cfg.experiment.cycle_hours * 3600.0;
    double t = nature.times_seconds[last];
    std::uint64_t cycle = 0;
    worker::CycleOutcome out;
    std::vector<double> forecast_s, analysis_s;
    r.ms = time_calls(
        ctx,
        [&] {
          const double f = engine.forecast_cycle();
          t += cycle_s;
          out = engine.analyse(filter, set, ++cycle, t, {}, false);
          forecast_s.push_back(f);
          analysis_s.push_back(out.record.seconds_analysis);
        },
        r.note);
    r.observations = static_cast<std::size_t>(out.record.observations_used);
    const std::size_t dim = engine.state_size();
    const int k = o.members;
    Work w;
    if (vit) {
      const Work fw = vit_work(vit_architecture(o.vit_weights), k);
      const Work aw = ensf_work(k, dim, diagnostic(out, "ensf_steps"));
      w = {fw.bytes + aw.bytes, fw.flops + aw.flops, fw.model + " + " + aw.model};
    } else {
      w = letkf_work(k, dim, r.observations, diagnostic(out, "letkf_mean_local_obs"));
      w.model += " (the SQG forecast not counted)";
    }
    set_work(r, w);
    // The timed calls' own split (the warm-up calls come first in the lists).
    const std::size_t skip_n = forecast_s.size() - r.ms.size();
    forecast_s.erase(forecast_s.begin(), forecast_s.begin() + static_cast<std::ptrdiff_t>(skip_n));
    analysis_s.erase(analysis_s.begin(), analysis_s.begin() + static_cast<std::ptrdiff_t>(skip_n));
    append_note(r.note, "forecast " + fmt("%.3f", median(forecast_s) * 1e3) + " ms + analysis " +
                            fmt("%.3f", median(analysis_s) * 1e3) + " ms (medians" +
                            (ctx.gpu ? "; host side: queued device work may finish in the next "
                                       "stage)"
                                     : ")"));
    if (out.diagnostics.count("device_host_bytes"))
      append_note(r.note, "host<->device " + fmt("%.0f", diagnostic(out, "device_host_bytes")) +
                              " B in the last cycle");
    append_note(r.note, "model " + engine.model_identity() + ", filter " + filter);
  });
}

void run_cycle(Context& ctx) {
  if (!skip_vit(ctx, "cycle", "vit+ensf")) run_cycle_entry(ctx, "vit+ensf", true);
  run_cycle_entry(ctx, "sqg+letkf", false);
}

// ---------------------------------------------------------------- copy

void run_copy(Context& ctx) {
  const Options& o = ctx.opt;
  const std::size_t mib = std::size_t{1} << 20;
  const std::size_t requested = static_cast<std::size_t>(o.copy_mib) * mib;
  if (!ctx.gpu) {
    run_entry(ctx, "copy", "memcpy", [&](Row& r) {
      const std::size_t size = requested;
      std::vector<unsigned char> src(size, 1), dst(size, 0);
      const int parts = std::max(1, o.threads);
      r.ms = time_calls(
          ctx,
          [&] {
#pragma omp parallel for num_threads(parts) schedule(static)
            for (int c = 0; c < parts; ++c) {
              const std::size_t b = size * c / parts, e = size * (c + 1) / parts;
              std::memcpy(dst.data() + b, src.data() + b, e - b);
            }
          },
          r.note);
      r.bytes = 2.0 * static_cast<double>(size);
      r.model = "copy: bytes 2 x size (read + written)";
      append_note(r.note, "std::memcpy of " + std::to_string(size / mib) + " MiB in " +
                              std::to_string(parts) + " chunk(s) on as many threads");
    });
    return;
  }
  run_entry(ctx, "copy", "copy_on_device", [&](Row& r) {
    const std::size_t state = 2 * static_cast<std::size_t>(o.n) * o.n;
    const std::size_t ensemble4 = 4 * static_cast<std::size_t>(o.members) * state * sizeof(double);
    std::size_t size = std::max(requested, ensemble4);
    size = (size + 255) / 256 * 256;
    const std::size_t wanted = size;
    using Buffer = hip::detail::DeviceArray<unsigned char>;
    Buffer src, dst;
    for (;;) {
      try {
        src = Buffer(size, "the copy source");
        dst = Buffer(size, "the copy destination");
        break;
      } catch (const std::runtime_error&) {
        src = Buffer();
        dst = Buffer();
        if (size <= mib) throw;
        size /= 2;
      }
    }
    src.zero();
    dst.zero();
    hip::detail::synchronize("zeroing the copy buffers");
    r.ms = time_calls(
        ctx, [&] { hip::detail::copy_on_device(dst.get(), src.get(), size); }, r.note);
    r.bytes = 2.0 * static_cast<double>(size);
    r.model = "copy: bytes 2 x size (read + written)";
    append_note(r.note, "device-to-device copy of " + fmt("%.1f", static_cast<double>(size) / mib) +
                            " MiB");
    if (size < wanted)
      append_note(r.note, "reduced from " + fmt("%.1f", static_cast<double>(wanted) / mib) +
                              " MiB: allocation failed");
  });
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{
      "Times the GPU paths (LETKF, EnSF, ViT forward, cycles, copy bandwidth), or the "
      "same work on the CPU, and writes CSV"};
  app.add_option("--device", o.device, "gpu (hip, cuda) or cpu; auto takes the GPU when usable")
      ->check(CLI::IsMember(std::vector<std::string>(std::begin(device::kRequestNames),
                                                     std::end(device::kRequestNames))))
      ->capture_default_str();
  app.add_option("--n", o.n, "grid points per direction")
      ->check(CLI::Range(4, 4096))
      ->capture_default_str();
  app.add_option("--members", o.members, "ensemble members (the ViT's batch)")
      ->check(CLI::Range(2, 100000))
      ->capture_default_str();
  app.add_option("--observations", o.observations,
                 "observations; 0 or >= 2 N^2: every grid point, fewer: a deterministic subset")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--what", o.what, "cases, comma separated")
      ->delimiter(',')
      ->check(CLI::IsMember({"letkf", "ensf", "vit", "cycle", "copy"}))
      ->capture_default_str();
  app.add_option("--repeats", o.repeats, "timed calls per entry")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  app.add_option("--warmup", o.warmup, "untimed calls first")
      ->check(CLI::Range(0, 1000000))
      ->capture_default_str();
  app.add_option("--csv", o.csv, "CSV output file")->capture_default_str();
  app.add_option("--vit-weights", o.vit_weights, "ViT checkpoint (vit and cycle)")
      ->capture_default_str();
  app.add_option("--max-seconds", o.max_seconds, "time budget per entry, seconds")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--threads", o.threads, "OpenMP threads of the CPU side; 0 = every core")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--copy-mib", o.copy_mib, "copy case size, MiB")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  if (o.threads == 0) o.threads = omp_get_num_procs();
  omp_set_num_threads(o.threads);

  Context ctx;
  device::Choice choice;
  try {
    choice =
        device::choose(device::parse_request(o.device), device::local_rank_from_environment(0));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gpu_timing: %s\n", e.what());
    return 2;
  }
  ctx.gpu = choice.backend == device::Backend::kGpu;
  std::printf("device: %s\ntoolchain: %s\n%s\n", choice.device_name.c_str(),
              choice.toolchain.c_str(), choice.reason.c_str());
  std::printf("threads %d; N %d, %d members; repeats %d, warm-up %d, max %g s per entry\n",
              o.threads, o.n, o.members, o.repeats, o.warmup, o.max_seconds);
  std::fflush(stdout);

  try {
    ctx.defaults = config::load(std::nullopt, {});
    Report report(o.csv, std::string(device::name(choice.backend)), o.n, o.members);
    Watchdog watchdog(report, 3 * o.max_seconds + 60);
    ctx.opt = o;
    ctx.report = &report;
    ctx.watchdog = &watchdog;
    const std::map<std::string, void (*)(Context&)> cases = {{"letkf", run_letkf},
                                                             {"ensf", run_ensf},
                                                             {"vit", run_vit},
                                                             {"cycle", run_cycle},
                                                             {"copy", run_copy}};
    for (const std::string& w : o.what)
      cases.at(w)(ctx);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gpu_timing: %s\n", e.what());
    return 2;
  }
  if (ctx.errors > 0) {
    std::fprintf(stderr, "gpu_timing: %d entr%s failed (see the note column)\n", ctx.errors,
                 ctx.errors == 1 ? "y" : "ies");
    return 1;
  }
  return 0;
}
