#include "core/random.hpp"

#include <Random123/philox.h>
#include <Random123/boxmuller.hpp>
#include <Random123/uniform.hpp>

namespace rtda {
namespace {
using Philox = r123::Philox4x64;

// The counter is (cycle, member, block, 0): four 64-bit outputs per block.
Philox::ctr_type block_bits(const std::uint64_t key[2], std::uint64_t cycle, std::uint64_t member,
                            std::uint64_t block) {
  Philox rng;
  Philox::ctr_type ctr = {{cycle, member, block, 0}};
  Philox::key_type k = {{key[0], key[1]}};
  return rng(ctr, k);
}

template <typename Out>
void fill_normal_impl(const std::uint64_t key[2], std::uint64_t cycle, std::uint64_t member,
                      std::span<Out> out, double mean, double sd, std::uint64_t first) {
  std::size_t k = 0;
  const std::size_t n = out.size();
  while (k < n) {
    const std::uint64_t idx = first + k;
    const std::uint64_t block = idx / 4;
    const auto bits = block_bits(key, cycle, member, block);
    const auto a = r123::boxmuller(bits.v[0], bits.v[1]);
    const auto b = r123::boxmuller(bits.v[2], bits.v[3]);
    const double vals[4] = {a.x, a.y, b.x, b.y};
    for (std::uint64_t j = idx % 4; j < 4 && k < n; ++j, ++k) {
      out[k] = static_cast<Out>(mean + sd * vals[j]);
    }
  }
}
}  // namespace

RandomStream::RandomStream(std::uint64_t seed, RandomPurpose purpose, std::uint64_t cycle,
                           std::uint64_t member)
    : key_{seed, static_cast<std::uint64_t>(purpose)}, cycle_(cycle), member_(member) {}

double RandomStream::normal(std::uint64_t index) const {
  double v;
  fill_normal_impl<double>(key_, cycle_, member_, std::span<double>(&v, 1), 0.0, 1.0, index);
  return v;
}

double RandomStream::uniform(std::uint64_t index) const {
  const auto bits = block_bits(key_, cycle_, member_, index / 4);
  // u01 maps to (0, 1], never 0, so log() and divisions by it are safe.
  return r123::u01<double>(bits.v[index % 4]);
}

void RandomStream::fill_normal(std::span<double> out, double mean, double sd,
                               std::uint64_t first) const {
  fill_normal_impl<double>(key_, cycle_, member_, out, mean, sd, first);
}

void RandomStream::fill_normal(std::span<float> out, double mean, double sd,
                               std::uint64_t first) const {
  fill_normal_impl<float>(key_, cycle_, member_, out, mean, sd, first);
}

void RandomStream::fill_uniform(std::span<double> out, std::uint64_t first) const {
  for (std::size_t k = 0; k < out.size(); ++k)
    out[k] = uniform(first + k);
}

}  // namespace rtda
