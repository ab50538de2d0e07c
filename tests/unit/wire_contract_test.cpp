// The protobuf schema is the only wire contract; these pin what other code relies on.
#include <gtest/gtest.h>

#include "obs/observation.hpp"
#include "rtda.pb.h"

namespace rtda {
namespace {

// Observation files store the wire enum's integers (docs/architecture.md §7).
static_assert(wire::OPERATOR_LINEAR_K == static_cast<int>(obs::ObsOperator::kLinearK));
static_assert(wire::OPERATOR_ARCTAN == static_cast<int>(obs::ObsOperator::kArctan));
static_assert(wire::OPERATOR_IDENTITY == static_cast<int>(obs::ObsOperator::kIdentity));

TEST(WireContract, ObservationRoundTripsThroughTheGeneratedCode) {
  wire::Observation o;
  o.set_id(0xFFFFFFFFFFFFFFF0ull);
  o.set_time_seconds(43200.0);
  o.set_level(1);
  o.set_x_m(312500.0);
  o.set_y_m(19687500.0);
  o.set_value(-3.25);
  o.set_error_sd(1.0);
  o.set_op(wire::OPERATOR_ARCTAN);
  const std::string bytes = o.SerializeAsString();
  wire::Observation back;
  ASSERT_TRUE(back.ParseFromString(bytes));
  EXPECT_EQ(back.id(), o.id());
  EXPECT_EQ(back.time_seconds(), o.time_seconds());
  EXPECT_EQ(back.level(), 1u);
  EXPECT_EQ(back.x_m(), o.x_m());
  EXPECT_EQ(back.y_m(), o.y_m());
  EXPECT_EQ(back.value(), o.value());
  EXPECT_EQ(back.op(), wire::OPERATOR_ARCTAN);
}

TEST(WireContract, TruncatedBytesDoNotParse) {
  wire::Observation o;
  o.set_id(7);
  o.set_value(1.5);
  std::string bytes = o.SerializeAsString();
  bytes.pop_back();
  wire::Observation back;
  EXPECT_FALSE(back.ParseFromString(bytes));
}

}  // namespace
}  // namespace rtda
