// core/philox_hd.hpp, the host/device form of NormalBatchStream's generator: the HIP EnSF
// draws its noise through it, so it must give NormalBatchStream's numbers bit for bit
// (docs/architecture.md §4: results independent of the backend). Runs on the CPU.
#include "core/philox_hd.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "core/normal_batch.hpp"
#include "core/random.hpp"

#include <Random123/philox.h>

namespace rtda {
namespace {

bool same_bits(double a, double b) {
  return std::memcmp(&a, &b, sizeof a) == 0;
}

TEST(PhiloxHd, NormalBlocksAreNormalBatchStreamBitForBit) {
  // Keys, counters and columns spread over their ranges, plus the corners.
  const std::uint64_t seeds[] = {0, 42, 20240712, 0xFFFFFFFFFFFFFFFFull};
  const std::uint64_t cycles[] = {0, 1, 299, 0xFFFFFFFFull};
  RandomStream pick(7, RandomPurpose::kTest, 3, 0);
  std::size_t compared = 0;
  for (std::uint64_t seed : seeds)
    for (std::uint64_t cycle : cycles)
      for (std::uint64_t member : {0ull, 1ull, 19ull, 0xFFFFFFFFull}) {
        const NormalBatchStream stream(seed, RandomPurpose::kEnsfNoise, cycle, member);
        for (int draw = 0; draw < 64; ++draw) {
          const auto row = static_cast<std::uint32_t>(pick.uniform(compared) * 1000.0);
          const auto block = static_cast<std::uint32_t>(pick.uniform(compared + 1) * 4294967295.0);
          double hd[4];
          philox_hd::normal_block(stream.key_word(0), stream.key_word(1),
                                  static_cast<std::uint32_t>(cycle),
                                  static_cast<std::uint32_t>(member), row, block, hd);
          for (int j = 0; j < 4; ++j)
            ASSERT_TRUE(same_bits(hd[j], stream.normal(row, std::uint64_t{block} * 4 + j)))
                << "seed " << seed << " cycle " << cycle << " member " << member << " row " << row
                << " column " << std::uint64_t{block} * 4 + j << ": " << hd[j] << " vs "
                << stream.normal(row, std::uint64_t{block} * 4 + j);
          compared += 2;
        }
      }
  EXPECT_EQ(compared, 2u * 4 * 4 * 4 * 64);
}

TEST(PhiloxHd, EveryColumnOfAnEnsfRowMatchesTheBatchFill) {
  // A whole N = 64 state row as the EnSF draws it (fill is what the CPU filter calls).
  const NormalBatchStream stream(42, RandomPurpose::kEnsfNoise, 5, 3);
  std::vector<double> cpu(8192);
  stream.fill(17, 0, cpu);
  for (std::uint32_t block = 0; block < 2048; ++block) {
    double hd[4];
    philox_hd::normal_block(stream.key_word(0), stream.key_word(1), 5, 3, 17, block, hd);
    for (int j = 0; j < 4; ++j)
      ASSERT_TRUE(same_bits(hd[j], cpu[4 * block + j])) << "column " << 4 * block + j;
  }
}

TEST(PhiloxHd, Philox4x32IsRandom123s) {
  RandomStream bits(11, RandomPurpose::kTest, 4, 0);
  r123::Philox4x32 reference;
  for (std::uint64_t d = 0; d < 1000; ++d) {
    const auto word = [&](std::uint64_t i) {
      return static_cast<std::uint32_t>(bits.uniform(6 * d + i) * 4294967295.0);
    };
    const r123::Philox4x32::ctr_type ctr = {{word(0), word(1), word(2), word(3)}};
    const r123::Philox4x32::key_type key = {{word(4), word(5)}};
    const auto expected = reference(ctr, key);
    std::uint32_t hd[4] = {ctr.v[0], ctr.v[1], ctr.v[2], ctr.v[3]};
    philox_hd::philox4x32_10(hd, key.v[0], key.v[1]);
    for (int j = 0; j < 4; ++j)
      ASSERT_EQ(hd[j], expected.v[j]) << "draw " << d << " word " << j;
  }
}

}  // namespace
}  // namespace rtda
