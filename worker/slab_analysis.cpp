#include "slab_analysis.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace rtda::worker {
namespace {

// No analysis: the posterior is the prior. A free-running ensemble, the baseline every
// filter is measured against (science.md §6: "SQG free run").
class FreeRun : public SlabAnalysis {
 public:
  std::string_view name() const override { return "none"; }
  void analyse_columns(std::span<const double> prior_cols, std::span<const double>, int,
                       const obs::ObservationSpace&, const filters::AnalysisContext&, std::size_t,
                       std::size_t, std::span<double> post_cols, MPI_Comm,
                       std::map<std::string, double>&) override {
    std::copy(prior_cols.begin(), prior_cols.end(), post_cols.begin());
  }
};

}  // namespace

std::unique_ptr<SlabAnalysis> make_slab_analysis(std::string_view filter,
                                                 const config::Config& cfg) {
  (void)cfg;
  if (filter == "none") return std::make_unique<FreeRun>();
  throw std::invalid_argument("--filter " + std::string(filter) + ": expected letkf, ensf or none");
}

}  // namespace rtda::worker
