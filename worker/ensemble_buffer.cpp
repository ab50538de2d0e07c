#include "ensemble_buffer.hpp"

#include <cmath>
#include <stdexcept>

#include "filters/inflation.hpp"

namespace rtda::worker {

void mean_and_spread(std::span<const double> all, int k, std::size_t n, std::vector<double>& mean,
                     std::vector<double>& spread) {
  mean.assign(n, 0.0);
  spread.assign(n, 0.0);
  for (int m = 0; m < k; ++m) {
    for (std::size_t e = 0; e < n; ++e)
      mean[e] += all[m * n + e];
  }
  for (auto& v : mean)
    v /= k;
  for (int m = 0; m < k; ++m) {
    for (std::size_t e = 0; e < n; ++e) {
      const double d = all[m * n + e] - mean[e];
      spread[e] += d * d;
    }
  }
  for (auto& v : spread)
    v = std::sqrt(v / (k - 1));
}

double* EnsembleBuffer::device_members() {
  throw std::logic_error("the ensemble is in host memory: no device members");
}

namespace {

class HostBuffer final : public EnsembleBuffer {
 public:
  explicit HostBuffer(DistributedEnsemble& ens) : EnsembleBuffer(ens) {}
  filters::MemorySpace memory() const override { return filters::MemorySpace::kHost; }
  std::span<double> host_members() override { return ens_.local_states(); }

  double* observe_all(const obs::ObservationSpace& space) override {
    hx_ = ens_.observe_all(space);
    return hx_.data();
  }
  std::vector<double> observation_moments(std::size_t) override {
    return filters::observation_moments(hx_, ens_.members());
  }
  double* to_columns() override {
    ens_.to_columns(cols_);
    return cols_.data();
  }
  std::vector<double> column_mean_spread(const double* cols) override {
    const std::size_t dim = ens_.levels() * ens_.local_columns();
    std::vector<double> m, s;
    mean_and_spread({cols, static_cast<std::size_t>(ens_.members()) * dim}, ens_.members(), dim, m,
                    s);
    m.insert(m.end(), s.begin(), s.end());
    return m;
  }
  void inflate(double* values, int members, std::size_t stride, double factor) override {
    filters::inflate({values, static_cast<std::size_t>(members) * stride}, members, factor);
  }
  void from_columns(const double* cols) override {
    ens_.from_columns(
        {cols, static_cast<std::size_t>(ens_.members()) * ens_.levels() * ens_.local_columns()});
  }
  std::span<const double> host_columns(const double* cols) const override {
    return {cols, static_cast<std::size_t>(ens_.members()) * ens_.levels() * ens_.local_columns()};
  }

 private:
  std::vector<double> hx_, cols_;
};

}  // namespace

std::unique_ptr<EnsembleBuffer> make_host_buffer(DistributedEnsemble& ensemble) {
  return std::make_unique<HostBuffer>(ensemble);
}

std::unique_ptr<EnsembleBuffer> make_ensemble_buffer(const Comm& comm,
                                                     DistributedEnsemble& ensemble,
                                                     device::Backend backend) {
  if (backend == device::Backend::kGpu) return make_device_buffer(comm, ensemble);
  return make_host_buffer(ensemble);
}

}  // namespace rtda::worker
