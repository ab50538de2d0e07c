// CF time units and instants (core/time_units.hpp): what files of other tools give as times.
#include "core/time_units.hpp"

#include <gtest/gtest.h>

namespace rtda::core {
namespace {

TEST(TimeUnits, InstantsInTheirSpellings) {
  EXPECT_EQ(*parse_instant("1970-01-01"), 0.0);
  EXPECT_EQ(*parse_instant("2000-01-01T00:00:00Z"), 946684800.0);
  EXPECT_EQ(*parse_instant("2000-01-01 00:00:00"), 946684800.0);
  EXPECT_EQ(*parse_instant("2000-01-01 00:00:00 UTC"), 946684800.0);
  // 2000-03-01T00:00Z = 951868800 s; the offset +01:00 is an hour ahead of UTC.
  EXPECT_EQ(*parse_instant("2000-03-01T01:02:03.5+01:00"), 951868800.0 + 3723.5 - 3600.0);
  EXPECT_EQ(*parse_instant("2000-03-01T01:02"), 951868800.0 + 3720.0);
  EXPECT_EQ(*parse_instant("1969-12-31T23:59:59Z"), -1.0);
  EXPECT_EQ(*parse_instant("2024-02-29"), 1709164800.0);  // a leap day
}

TEST(TimeUnits, BadInstantsAreRefused) {
  for (const char* bad : {"", "2000", "2000-13-01", "2000-01-01T25:00", "2000-01-01Tnoon",
                          "2000-01-01 00:00:00 CET", "01/01/2000"})
    EXPECT_FALSE(parse_instant(bad).has_value()) << bad;
}

TEST(TimeUnits, UnitsSinceAnInstantConvertToTheRunsEpoch) {
  const double epoch = *parse_instant(kDefaultEpoch);
  const auto hours = parse_time_units("hours since 2000-01-02");
  ASSERT_TRUE(hours.has_value());
  EXPECT_EQ(to_epoch_seconds(1.0, *hours, epoch), 86400.0 + 3600.0);
  const auto own = parse_time_units(time_units(kDefaultEpoch));
  ASSERT_TRUE(own.has_value());
  EXPECT_EQ(to_epoch_seconds(25920000.0, *own, epoch), 25920000.0);
  // Plain seconds (rtda's files before CF times): already seconds since the run's epoch.
  const auto plain = parse_time_units("s");
  ASSERT_TRUE(plain.has_value());
  EXPECT_FALSE(plain->origin_unix.has_value());
  EXPECT_EQ(to_epoch_seconds(12.0, *plain, epoch), 12.0);
  EXPECT_EQ(to_epoch_seconds(2.0, *parse_time_units("days"), epoch), 172800.0);
}

TEST(TimeUnits, WhatIsNoTimeIsRefused) {
  for (const char* bad : {"m", "K", "seconds after 2000-01-01", "fortnights since 2000-01-01",
                          "seconds since yesterday", ""})
    EXPECT_FALSE(parse_time_units(bad).has_value()) << bad;
}

}  // namespace
}  // namespace rtda::core
