// fuzz_control: each input is one ControlRequest frame sent to a live Coordinator's control
// endpoint (DEALER, empty delimiter first, as rtda_client does). Every input must get a
// ControlReply within 2 s (fuzz_service.hpp). COMMAND_SHUTDOWN is not sent (it would end the
// run; the control fuzzer filters it out after parsing the input as the server would).
#include <cstdint>
#include <string>

#include "fuzz_service.hpp"
#include "rtda.pb.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  auto& s = rtda::fuzz::service();
  s.start();
  // A published analysis (LATEST_ANALYSIS has something to return) and a connected group.
  s.run_one_cycle(0);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto& s = rtda::fuzz::service();
  const std::string body(reinterpret_cast<const char*>(data), size);
  rtda::wire::ControlRequest q;
  if (q.ParseFromString(body) && q.command() == rtda::wire::COMMAND_SHUTDOWN) return -1;
  const rtda::wire::ControlReply r = s.control_raw(body);
  if (r.ok() && !r.has_status()) rtda::fuzz::fail("an ok control reply without a status");
  return 0;
}
