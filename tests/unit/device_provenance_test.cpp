// What computed a file's numbers, in its provenance (worker/experiment.hpp, docs/file-formats.md):
// the device attributes of a choice, and an experiment archive that carries them.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <string>

#include "comm.hpp"
#include "config/config.hpp"
#include "experiment.hpp"
#include "hip/device.hpp"
#include "io/conventions.hpp"
#include "io/hdf5_file.hpp"

#ifndef RTDA_L96_CONFIG
#error "RTDA_L96_CONFIG (configs/lorenz96.toml) must be defined by the build"
#endif

namespace rtda::worker {
namespace {

TEST(DeviceProvenance, NamesTheBackendTheDeviceAndItsToolchain) {
  const device::Choice cpu = device::choose(device::Request::kCpu, 0);
  const io::Provenance p = device_provenance(cpu);
  EXPECT_EQ(p.size(), 3u);
  EXPECT_EQ(p.at("device"), "cpu");
  EXPECT_EQ(p.at("device_name"), cpu.device_name);
  EXPECT_EQ(p.at("device_toolchain"), cpu.toolchain);
  EXPECT_FALSE(p.at("device_name").empty());
  EXPECT_FALSE(p.at("device_toolchain").empty());

  device::Choice gpu;
  gpu.backend = device::Backend::kGpu;
  gpu.device_index = 1;
  gpu.device_name = "NVIDIA H200 (sm_90)";
  gpu.toolchain = "CUDA, nvcc 11.8.89";
  const io::Provenance g = device_provenance(gpu);
  EXPECT_EQ(g.at("device"), "gpu");
  EXPECT_EQ(g.at("device_name"), "NVIDIA H200 (sm_90)");
  EXPECT_EQ(g.at("device_toolchain"), "CUDA, nvcc 11.8.89");
}

TEST(DeviceProvenance, IsNotReservedForRtdasOwnAttributes) {
  for (const auto& [name, value] : device_provenance(device::choose(device::Request::kCpu, 0)))
    EXPECT_FALSE(io::is_reserved_attribute(name)) << name;
}

// A few Lorenz-96 cycles (the truth is made in memory): the archive's root attributes say
// where the experiment ran, as run_experiment was told.
TEST(DeviceProvenance, TheExperimentArchiveCarriesIt) {
  const config::Config cfg = config::load(
      std::string(RTDA_L96_CONFIG), {"experiment.cycles=3", "experiment.statistics_from_cycle=0",
                                     "ensemble.members=8", "nature.spinup_days=1"});
  const auto out = std::filesystem::temp_directory_path() /
                   ("rtda-device-provenance-" + std::to_string(::getpid()) + ".h5");
  device::Choice choice = device::choose(device::Request::kCpu, 0);
  choice.device_name = "test processor";
  run_experiment(Comm::single(), cfg, "letkf", out.string(), {}, choice);
  const io::Provenance p = io::read_provenance(io::File::open_read(out));
  std::filesystem::remove(out);
  EXPECT_EQ(p.at("created_by"), "rtda experiment");
  EXPECT_EQ(p.at("device"), "cpu");
  EXPECT_EQ(p.at("device_name"), "test processor");
  EXPECT_EQ(p.at("device_toolchain"), choice.toolchain);
}

}  // namespace
}  // namespace rtda::worker
