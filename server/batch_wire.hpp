// What the ingest endpoint learns from a batch's bytes before and after parsing it
// (docs/service.md "Ingest"): its size in observations and unknown bytes, counted from the
// wire format without building the message (so the parse cost is bounded first); unknown
// fields anywhere in it; a hash of its content; and client text made safe to quote.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "rtda.pb.h"

namespace rtda::server {

// What a batch holds, counted from the wire format without building the message: the parse
// cost (memory and time) is bounded before the full parse.
struct BatchShape {
  bool readable = false;
  std::size_t observations = 0;  // Observation messages plus the longest column
  std::size_t unknown_bytes = 0;
};
BatchShape scan_batch(std::span<const std::byte> body);

// Whether the batch, its truth, its columns or any observation carries fields this version
// does not know.
bool has_unknown_fields(const wire::ObservationBatch& b);

// Identifies the content of a validated batch (its encoding), so a reused (source, seq) with
// other content is told apart from a retry. Not cryptographic: it catches accidents; a key that
// may send as a source can only hurt that source anyway.
std::uint64_t batch_content_hash(std::span<const std::byte> bytes);

// Text from a client, made safe to quote in a reply or a log line: at most `max` characters,
// anything outside printable ASCII as '?', and "..." when cut.
std::string quote_client_text(std::string_view text, std::size_t max = 64);

}  // namespace rtda::server
