// Counter-based random numbers keyed by (seed, purpose, cycle, member) (docs/architecture.md §4).
//
// Every random number rtda draws is a pure function of those four keys and an index, so a
// result never depends on the number of MPI ranks, thread scheduling, or a restart. The
// generator is Random123's Philox4x64-10; normals come from its Box–Muller transform.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace rtda {

// What a stream is used for. The values are part of the reproducibility contract: changing
// one changes every result drawn from it, so only ever append.
enum class RandomPurpose : std::uint32_t {
  kNatureInitialNoise = 1,
  kInitialEnsemble = 2,
  kObservationError = 3,
  kShockSchedule = 4,
  kShockField = 5,
  kObservationNetwork = 6,
  kEnsfNoise = 7,
  kSurrogateOnline = 8,
  kTest = 1000,
};

class RandomStream {
 public:
  RandomStream(std::uint64_t seed, RandomPurpose purpose, std::uint64_t cycle = 0,
               std::uint64_t member = 0);

  // The i-th standard normal / uniform (0, 1] number of the stream; random access.
  double normal(std::uint64_t index) const;
  double uniform(std::uint64_t index) const;

  // out[k] = mean + sd * normal(first + k), filled four at a time.
  void fill_normal(std::span<double> out, double mean = 0.0, double sd = 1.0,
                   std::uint64_t first = 0) const;
  void fill_normal(std::span<float> out, double mean = 0.0, double sd = 1.0,
                   std::uint64_t first = 0) const;
  void fill_uniform(std::span<double> out, std::uint64_t first = 0) const;

 private:
  std::uint64_t key_[2];
  std::uint64_t cycle_;
  std::uint64_t member_;
};

}  // namespace rtda
