// fuzz_worker_link: each input is one message to a live Coordinator's workers endpoint, from
// one of three DEALER sockets with routing ids (worker groups). The first byte chooses:
//   bits 0-2  what: 0 raw bytes (the rest of the input), 1 hello, 2 heartbeat, 3 result,
//             4 checkpoint_done, 5 error, 6 a message of another protocol version, 7 a
//             complete valid cycle (hello if needed, task, valid result) then a fuzzed message
//   bits 3-4  which worker socket (0..2)
//   bit 5     send an empty delimiter frame first
// Structured messages take their fields from the rest of the input (FuzzedDataProvider), with
// the dispatch id, cycle and checkpoint path the server expects chosen often, so results and
// checkpoint notices reach their checks. After each message a STATUS on the control endpoint
// must be answered (the event loop is alive).
#include <fuzzer/FuzzedDataProvider.h>

#include <cmath>
#include <cstdint>
#include <fstream>
#include <limits>
#include <string>

#include "fuzz_builders.hpp"
#include "fuzz_service.hpp"
#include "rtda.pb.h"

namespace wire = rtda::wire;
using rtda::fuzz::Service;

namespace {

// Text for a string field: mostly ASCII (proto3 refuses invalid UTF-8 at parse time, which
// the raw mode covers), sometimes long.
std::string pick_text(FuzzedDataProvider& p, std::size_t max) {
  switch (p.ConsumeIntegralInRange<int>(0, 7)) {
    case 0:
      return std::string(p.ConsumeIntegralInRange<std::size_t>(0, 5000), 'x');
    case 1:
      return p.ConsumeRandomLengthString(max);
    default: {
      std::string s = p.ConsumeRandomLengthString(max);
      for (char& c : s)
        c = static_cast<char>(0x20 + (static_cast<unsigned char>(c) % 0x5f));
      return s;
    }
  }
}

std::int64_t pick_cycle(FuzzedDataProvider& p, const Service& s) {
  switch (p.ConsumeIntegralInRange<int>(0, 5)) {
    case 0:
      return p.ConsumeIntegral<std::int64_t>();
    case 1:
      return -1;
    case 2:
      return s.last_task_cycle - 1;
    default:
      return s.task ? s.task->cycle : s.last_task_cycle;
  }
}

double pick_double(FuzzedDataProvider& p, double plausible) {
  return rtda::fuzz::pick_special(p, plausible);
}

void fill_result(FuzzedDataProvider& p, Service& s, wire::WorkerToServer& m) {
  const Service::Task t = s.task ? *s.task : Service::Task{};
  m = s.valid_result(t);
  auto* r = m.mutable_result();
  if (p.ConsumeIntegralInRange<int>(0, 5) == 0)
    r->set_dispatch_id(p.ConsumeIntegral<std::uint64_t>());
  auto* a = r->mutable_analysis();
  if (p.ConsumeIntegralInRange<int>(0, 5) == 0)
    a->set_cycle(static_cast<std::uint64_t>(pick_cycle(p, s)));
  if (p.ConsumeIntegralInRange<int>(0, 7) == 0) a->set_grid_n(p.ConsumeIntegral<std::uint32_t>());
  if (p.ConsumeIntegralInRange<int>(0, 7) == 0)
    a->mutable_mean()->Resize(p.ConsumeIntegralInRange<int>(0, 3000), 0.0);
  if (p.ConsumeIntegralInRange<int>(0, 7) == 0)
    a->mutable_spread()->Resize(p.ConsumeIntegralInRange<int>(0, 3000), 0.0);
  if (p.ConsumeIntegralInRange<int>(0, 7) == 0) a->set_members(p.ConsumeIntegral<std::uint32_t>());
  if (p.ConsumeIntegralInRange<int>(0, 7) == 0)
    a->mutable_ensemble()->Resize(p.ConsumeIntegralInRange<int>(0, 100), 0.0);
  if (p.ConsumeIntegralInRange<int>(0, 5) == 0 && a->mean_size() > 0)
    a->set_mean(p.ConsumeIntegralInRange<int>(0, a->mean_size() - 1), pick_double(p, 1.0));
  if (p.ConsumeIntegralInRange<int>(0, 5) == 0 && a->spread_size() > 0)
    a->set_spread(p.ConsumeIntegralInRange<int>(0, a->spread_size() - 1), pick_double(p, 1.0));
  const int diagnostics =
      p.ConsumeIntegralInRange<int>(0, 3) == 0 ? p.ConsumeIntegralInRange<int>(0, 300) : 0;
  for (int i = 0; i < diagnostics; ++i) {
    std::string name = i == 0 ? pick_text(p, 80) : "d" + std::to_string(i);
    (*a->mutable_diagnostics())[name] = pick_double(p, 0.5);
  }
  if (p.ConsumeBool()) a->set_filter(pick_text(p, 40));
  auto* lin = a->mutable_lineage();
  if (p.ConsumeBool()) lin->set_model(pick_text(p, 200));
  if (p.ConsumeIntegralInRange<int>(0, 3) == 0) {
    lin->set_device(pick_text(p, 40));
    lin->set_device_name(pick_text(p, 300));
    lin->set_toolchain(pick_text(p, 300));
  }
  const int refused =
      p.ConsumeIntegralInRange<int>(0, 3) == 0 ? p.ConsumeIntegralInRange<int>(0, 200) : 0;
  for (int i = 0; i < refused; ++i) {
    auto* x = lin->add_refused();
    x->set_index(p.ConsumeIntegralInRange<int>(0, 3) == 0
                     ? p.ConsumeIntegral<std::uint32_t>()
                     : p.ConsumeIntegralInRange<std::uint32_t>(0, 10));
    x->set_field(pick_text(p, 20));
  }
  lin->set_observations_refused(p.ConsumeIntegral<std::uint64_t>());
  if (p.ConsumeBool())
    (*lin->mutable_refused_by_reason())[pick_text(p, 30)] = p.ConsumeIntegral<std::uint64_t>();
  auto* l = a->mutable_latency();
  l->set_forecast_seconds(pick_double(p, 0.1));
  l->set_forecast_wait_seconds(pick_double(p, 0.0));
  l->set_analysis_seconds(pick_double(p, 0.1));
  r->set_task_received_unix_seconds(pick_double(p, r->task_received_unix_seconds()));
  r->set_done_unix_seconds(pick_double(p, r->done_unix_seconds()));
  a->set_backlog_cycles(p.ConsumeIntegral<std::uint32_t>());
}

std::string build(FuzzedDataProvider& p, Service& s, int what) {
  wire::WorkerToServer m;
  m.set_version(wire::PROTOCOL_VERSION_1);
  switch (what) {
    case 1: {
      const std::int64_t last = s.last_task_cycle - 1;
      m = s.hello(p.ConsumeBool() ? -1 : p.ConsumeBool() ? last : pick_cycle(p, s));
      auto* h = m.mutable_hello();
      if (p.ConsumeBool()) h->set_ranks(p.ConsumeIntegral<std::uint32_t>());
      if (p.ConsumeBool()) h->set_host(pick_text(p, 300));
      if (p.ConsumeBool()) h->set_device(pick_text(p, 40));
      if (p.ConsumeIntegralInRange<int>(0, 3) == 0) h->set_config_hash(pick_text(p, 64));
      if (p.ConsumeBool()) h->set_device_name(pick_text(p, 300));
      if (p.ConsumeBool()) h->set_toolchain(pick_text(p, 300));
      break;
    }
    case 2: {
      auto* hb = m.mutable_heartbeat();
      hb->set_unix_seconds(pick_double(p, 1.7e9));
      hb->set_cycle(pick_cycle(p, s));
      hb->set_stage(pick_text(p, 64));
      break;
    }
    case 3:
      fill_result(p, s, m);
      break;
    case 4: {
      const std::int64_t k = pick_cycle(p, s);
      auto* c = m.mutable_checkpoint_done();
      c->set_cycle(static_cast<std::uint64_t>(k));
      const int path = p.ConsumeIntegralInRange<int>(0, 3);
      c->set_path(path == 0 ? pick_text(p, 300) : s.checkpoint_path(k));
      // The worker writes the file before it says so (most of the time).
      if (path != 0 && k >= 0 && k < 100000000 && p.ConsumeIntegralInRange<int>(0, 3) != 0)
        std::ofstream(s.checkpoint_path(k)) << "not really HDF5";
      break;
    }
    case 5: {
      auto* e = m.mutable_error();
      e->set_cycle(pick_cycle(p, s));
      e->set_error(pick_text(p, 3000));
      e->set_fatal(p.ConsumeBool());
      break;
    }
    case 6:
      m = s.hello(-1);
      m.set_version(static_cast<wire::ProtocolVersion>(
          p.ConsumeIntegralInRange<int>(0, 3) == 0 ? p.ConsumeIntegral<int>() : 0));
      break;
  }
  return m.SerializeAsString();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  auto& s = rtda::fuzz::service();
  s.start();
  s.run_one_cycle(0);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  auto& s = rtda::fuzz::service();
  const int what = data[0] & 7;
  const int w = ((data[0] >> 3) & 3) % rtda::fuzz::kWorkers;
  const bool delimiter = (data[0] >> 5) & 1;
  FuzzedDataProvider p(data + 1, size - 1);
  std::string body;
  if (what == 0) {
    body.assign(reinterpret_cast<const char*>(data + 1), size - 1);
  } else if (what == 7) {
    s.run_one_cycle(w);
    body = build(p, s, p.ConsumeIntegralInRange<int>(1, 6));
  } else {
    body = build(p, s, what);
  }
  s.keep_windows_closed();
  s.send_worker(w, body, delimiter);
  s.status_resumed();  // the event loop is alive and answers
  s.drain_workers(0);
  return 0;
}
