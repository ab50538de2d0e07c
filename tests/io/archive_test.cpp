// The analysis archive opens in xarray with the layout of docs/architecture.md §7.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <vector>

#include "io/archive.hpp"

namespace rtda::io {
namespace {

TEST(ArchiveWriter, StreamsCyclesThatXarrayReads) {
  sqg::SqgParams p;
  p.N = 8;
  const auto dir = std::filesystem::path(RTDA_TEST_TMP) / "archive";
  std::filesystem::create_directories(dir);
  const auto path = dir / "run.h5";
  std::filesystem::remove(path);  // a previous run's file
  {
    ArchiveWriter w(path, p, 3, {{"created_by", "archive_test"}});
    for (int c = 0; c < 4; ++c) {
      std::vector<double> mean(p.state_size(), 10.0 * c), spread(p.state_size(), 1.0 + c);
      std::vector<double> members(3 * p.state_size(), -1.0 * c);
      w.append(43200.0 * c, mean, spread,
               {{"rmse_analysis", {0.5 * c, "K", "analysis RMSE vs truth"}},
                {"observations_used", {8192.0, "1", "observations assimilated"}}},
               members);
    }
    EXPECT_FALSE(std::filesystem::exists(path));  // only the .partial until close()
    w.close();
  }
  ASSERT_TRUE(std::filesystem::exists(path));
  const auto script = dir / "check.py";
  std::ofstream(script) << R"PY(
import sys, numpy as np, xarray as xr
ds = xr.open_dataset(sys.argv[1], engine="netcdf4", decode_times=False)
assert ds["mean"].dims == ("cycle", "level", "y", "x"), ds["mean"].dims
assert ds["q"].dims == ("cycle", "member", "level", "y", "x"), ds["q"].dims
assert ds.sizes["cycle"] == 4 and ds.sizes["member"] == 3
assert list(ds["cycle"].values) == [0, 1, 2, 3]
assert np.allclose(ds["time"].values, [0, 43200, 86400, 129600])
assert ds["rmse_analysis"].attrs["units"] == "K"
assert np.allclose(ds["rmse_analysis"].values, [0, 0.5, 1.0, 1.5])
assert float(ds["spread"][2].mean()) == 3.0
assert ds.attrs["file_kind"] == "analysis_archive" and int(ds.attrs["N"]) == 8
print("archive ok")
)PY";
  const std::string cmd =
      std::string(RTDA_SYSTEM_PYTHON) + " " + script.string() + " " + path.string();
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

}  // namespace
}  // namespace rtda::io
