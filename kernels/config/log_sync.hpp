// The observation log's durability policy before an ack (server.log_sync), in a header of its
// own so that the log itself links no configuration code.
#pragma once

#include "core/names.hpp"

namespace rtda::config {

enum class LogSync {
  kAlways,    // commit() returns only after fdatasync
  kInterval,  // commit() write()s; fdatasync at most every log_sync_interval_seconds
  kNever      // leave write-back to the OS (data survive a process crash, not a power loss)
};
inline constexpr core::NameTable<LogSync, 3> kLogSyncNames{{{
    {LogSync::kAlways, "always"},
    {LogSync::kInterval, "interval"},
    {LogSync::kNever, "never"},
}}};

}  // namespace rtda::config
