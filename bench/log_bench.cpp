// Durable observation-log throughput (target: >= 3 M observations/s durable, in batches of
// 10k observations, about 600 kB each, i.e. >= 300 durable 600 kB commits per second).
//
//   build/bench/log_bench [--benchmark_filter=...] [--benchmark_min_time=2s]
//   RTDA_LOG_BENCH_DIR=/path/on/the/target/disk build/bench/log_bench
//
// The log lives in a fresh directory under RTDA_LOG_BENCH_DIR (default: the system temp dir),
// so the numbers are those of that file system and device. Policy kAlways throughout: each
// commit is one write() and one fdatasync(). Segments are retired as they fill (outside the
// timing) so the benchmark does not fill the disk.
//
// AppendCommit/<record bytes>/<records per commit>: records/s, bytes/s, and obs/s at 60 bytes
//   per observation (600 kB = 10k observations).
// FdatasyncAfterAppend/40000: the fdatasync alone after one 40 kB record was written (manual
//   time), with median and 99th percentile.
// RawWriteFdatasync/40000: plain write()+fdatasync() of 40 kB on a file, the floor for the log.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "server/obs_log.hpp"

namespace {

namespace fs = std::filesystem;
using rtda::server::LogOptions;
using rtda::server::ObservationLog;
using rtda::server::SyncPolicy;

class BenchDir {
 public:
  explicit BenchDir(const std::string& tag) {
    const char* root = std::getenv("RTDA_LOG_BENCH_DIR");
    path_ = fs::path(root != nullptr ? root : fs::temp_directory_path().string()) /
            ("rtda-log-bench-" + tag + "-" + std::to_string(::getpid()));
    fs::remove_all(path_);
  }
  ~BenchDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::vector<std::byte> payload_of(std::size_t n) {
  std::vector<std::byte> p(n);
  for (std::size_t i = 0; i < n; ++i)
    p[i] = static_cast<std::byte>(i * 2654435761u >> 13);
  return p;
}

void retire_full_segments(benchmark::State& state, ObservationLog& log) {
  if (log.segments() <= 2) return;
  state.PauseTiming();
  log.remove_segments_before(log.next_index());
  state.ResumeTiming();
}

void BM_AppendCommit(benchmark::State& state) {
  const auto record_bytes = static_cast<std::size_t>(state.range(0));
  const auto per_commit = static_cast<int>(state.range(1));
  BenchDir dir("append");
  LogOptions o;
  o.dir = dir.path();
  o.sync = SyncPolicy::kAlways;
  ObservationLog log(o);
  const auto payload = payload_of(record_bytes);
  const std::uint64_t syncs0 = log.syncs();
  for (auto _ : state) {
    for (int i = 0; i < per_commit; ++i)
      log.append(payload);
    log.commit();
    retire_full_segments(state, log);
  }
  const auto records = static_cast<double>(state.iterations()) * per_commit;
  state.SetItemsProcessed(static_cast<std::int64_t>(records));
  state.SetBytesProcessed(static_cast<std::int64_t>(records * static_cast<double>(record_bytes)));
  state.counters["obs/s(60B)"] = benchmark::Counter(
      records * static_cast<double>(record_bytes) / 60.0, benchmark::Counter::kIsRate);
  state.counters["syncs/commit"] =
      static_cast<double>(log.syncs() - syncs0) /
      static_cast<double>(std::max<std::int64_t>(1, state.iterations()));
}
BENCHMARK(BM_AppendCommit)
    ->ArgNames({"bytes", "per_commit"})
    ->Args({40'000, 1})
    ->Args({40'000, 4})
    ->Args({600'000, 1})
    ->Args({600'000, 4})
    ->UseRealTime()  // the time is spent waiting for the device, not on the CPU
    ->Unit(benchmark::kMicrosecond);

void add_percentiles(benchmark::State& state, std::vector<double>& seconds) {
  if (seconds.empty()) return;
  std::sort(seconds.begin(), seconds.end());
  auto at = [&](double q) {
    return seconds[std::min(seconds.size() - 1, static_cast<std::size_t>(q * seconds.size()))];
  };
  state.counters["p50_us"] = at(0.50) * 1e6;
  state.counters["p99_us"] = at(0.99) * 1e6;
  state.counters["max_us"] = seconds.back() * 1e6;
}

void BM_FdatasyncAfterAppend(benchmark::State& state) {
  const auto record_bytes = static_cast<std::size_t>(state.range(0));
  BenchDir dir("fdatasync");
  LogOptions o;
  o.dir = dir.path();
  o.sync = SyncPolicy::kNever;  // commit() only write()s; the timed sync() is the fdatasync
  ObservationLog log(o);
  const auto payload = payload_of(record_bytes);
  std::vector<double> samples;
  for (auto _ : state) {
    log.append(payload);
    log.commit();
    const auto t0 = std::chrono::steady_clock::now();
    log.sync();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    state.SetIterationTime(s);
    samples.push_back(s);
    retire_full_segments(state, log);
  }
  add_percentiles(state, samples);
}
BENCHMARK(BM_FdatasyncAfterAppend)->Arg(40'000)->UseManualTime()->Unit(benchmark::kMicrosecond);

void BM_RawWriteFdatasync(benchmark::State& state) {
  const auto record_bytes = static_cast<std::size_t>(state.range(0));
  BenchDir dir("raw");
  fs::create_directories(dir.path());
  const auto file = dir.path() / "raw.dat";
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    state.SkipWithError("cannot open the raw file");
    return;
  }
  const auto payload = payload_of(record_bytes);
  std::size_t written = 0;
  for (auto _ : state) {
    if (::write(fd, payload.data(), payload.size()) != static_cast<ssize_t>(payload.size()) ||
        ::fdatasync(fd) != 0) {
      state.SkipWithError("write or fdatasync failed");
      break;
    }
    written += payload.size();
    if (written > (256u << 20)) {  // keep the file bounded, outside the timing
      state.PauseTiming();
      if (::ftruncate(fd, 0) != 0) state.SkipWithError("ftruncate failed");
      written = 0;
      state.ResumeTiming();
    }
  }
  ::close(fd);
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(record_bytes));
}
BENCHMARK(BM_RawWriteFdatasync)->Arg(40'000)->UseRealTime()->Unit(benchmark::kMicrosecond);

}  // namespace

int main(int argc, char** argv) {
  spdlog::set_level(spdlog::level::warn);  // the log's open/retention info lines would interleave
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
