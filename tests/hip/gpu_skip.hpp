// The GPU parity tests' skip: without a visible GPU the test is skipped, and its message says
// why (the runtime's reason, device::gpu_device_count) and what goes unchecked.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "hip/device.hpp"

// In a test body: "no GPU present (<the runtime's reason>): <what>" and return.
#define RTDA_SKIP_WITHOUT_GPU(what)                                             \
  do {                                                                          \
    std::string rtda_why_no_gpu;                                                \
    if (::rtda::device::gpu_device_count(&rtda_why_no_gpu) == 0)                \
      GTEST_SKIP() << "no GPU present (" << rtda_why_no_gpu << "): " << (what); \
  } while (false)
