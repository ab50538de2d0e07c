#include "hip/device.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <stdexcept>

namespace rd = rtda::device;

TEST(Device, ParsesTheChoicesAndNamesABadOne) {
  EXPECT_EQ(rd::parse_request("auto"), rd::Request::kAuto);
  EXPECT_EQ(rd::parse_request("cpu"), rd::Request::kCpu);
  EXPECT_EQ(rd::parse_request("gpu"), rd::Request::kGpu);
  try {
    rd::parse_request("tpu");
    FAIL() << "tpu accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("'tpu'"), std::string::npos) << e.what();
  }
}

// hip and cuda are gpu with this build's toolchain; the other vendor's name is refused with
// the toolchain this build has.
TEST(Device, ToolchainNamesMustBeThisBuilds) {
  const std::string have(rd::gpu_toolchain());
  for (const char* name : {"hip", "cuda"}) {
    const bool ours = (have == "HIP" && std::string(name) == "hip") ||
                      (have == "CUDA" && std::string(name) == "cuda");
    if (ours) {
      EXPECT_EQ(rd::parse_request(name), rd::Request::kGpu) << name;
      continue;
    }
    try {
      rd::parse_request(name);
      FAIL() << name << " accepted by a build whose GPU backend is " << have;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(have), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(rd::gpu_built(), have != "none");
  EXPECT_EQ(rd::gpu_compiler().empty(), have == "none");
}

TEST(Device, CpuIsAlwaysGranted) {
  const auto c = rd::choose(rd::Request::kCpu, 3);
  EXPECT_EQ(c.backend, rd::Backend::kCpu);
  EXPECT_EQ(c.device_index, -1);
  EXPECT_FALSE(c.device_name.empty());
  EXPECT_FALSE(c.toolchain.empty());
}

TEST(Device, AutoFallsBackToCpuWithoutADeviceAndGpuRefuses) {
  std::string why;
  if (rd::gpu_device_count(&why) > 0) GTEST_SKIP() << "a GPU is present";
  EXPECT_FALSE(why.empty());
  const auto c = rd::choose(rd::Request::kAuto, 0);
  EXPECT_EQ(c.backend, rd::Backend::kCpu);
  EXPECT_NE(c.reason.find("cpu"), std::string::npos) << c.reason;
  EXPECT_THROW(rd::choose(rd::Request::kGpu, 0), std::runtime_error);
}

TEST(Device, OneRankPerGpuByLocalRank) {
  std::string why;
  const int count = rd::gpu_device_count(&why);
  if (count == 0) GTEST_SKIP() << "no GPU present (" << why << "): device assignment not exercised";
  for (int local = 0; local < 2 * count; ++local) {
    const auto c = rd::choose(rd::Request::kGpu, local);
    EXPECT_EQ(c.backend, rd::Backend::kGpu);
    EXPECT_EQ(c.device_index, local % count);
    EXPECT_NE(c.toolchain.find(std::string(rd::gpu_toolchain())), std::string::npos) << c.toolchain;
  }
}

TEST(Device, LocalRankComesFromTheLauncher) {
  ::setenv("OMPI_COMM_WORLD_LOCAL_RANK", "5", 1);
  EXPECT_EQ(rd::local_rank_from_environment(0), 5);
  ::unsetenv("OMPI_COMM_WORLD_LOCAL_RANK");
  ::unsetenv("MPI_LOCALRANKID");
  ::unsetenv("SLURM_LOCALID");
  ::unsetenv("PMI_LOCAL_RANK");
  EXPECT_EQ(rd::local_rank_from_environment(7), 7);
}
