#include "hip/device.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <stdexcept>

namespace rd = rtda::device;

TEST(Device, ParsesTheThreeChoicesAndNamesABadOne) {
  EXPECT_EQ(rd::parse_request("auto"), rd::Request::kAuto);
  EXPECT_EQ(rd::parse_request("cpu"), rd::Request::kCpu);
  EXPECT_EQ(rd::parse_request("hip"), rd::Request::kHip);
  try {
    rd::parse_request("cuda");
    FAIL() << "cuda accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("'cuda'"), std::string::npos) << e.what();
  }
}

TEST(Device, CpuIsAlwaysGranted) {
  const auto c = rd::choose(rd::Request::kCpu, 3);
  EXPECT_EQ(c.backend, rd::Backend::kCpu);
  EXPECT_EQ(c.device_index, -1);
}

TEST(Device, AutoFallsBackToCpuWithoutADeviceAndHipRefuses) {
  std::string why;
  if (rd::hip_device_count(&why) > 0) GTEST_SKIP() << "a HIP device is present";
  EXPECT_FALSE(why.empty());
  const auto c = rd::choose(rd::Request::kAuto, 0);
  EXPECT_EQ(c.backend, rd::Backend::kCpu);
  EXPECT_NE(c.reason.find("cpu"), std::string::npos) << c.reason;
  EXPECT_THROW(rd::choose(rd::Request::kHip, 0), std::runtime_error);
}

TEST(Device, OneRankPerGpuByLocalRank) {
  const int count = rd::hip_device_count();
  if (count == 0) GTEST_SKIP() << "no HIP device present: device assignment not exercised";
  for (int local = 0; local < 2 * count; ++local) {
    const auto c = rd::choose(rd::Request::kHip, local);
    EXPECT_EQ(c.backend, rd::Backend::kHip);
    EXPECT_EQ(c.device_index, local % count);
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
