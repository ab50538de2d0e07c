#include "server/batch_wire.hpp"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>

#include <algorithm>

#include "server/obs_log.hpp"

namespace rtda::server {
namespace {

// Elements of a packed repeated field: doubles are 8 bytes, varints end with a byte < 0x80.
std::size_t packed_count(const std::uint8_t* p, int n, bool fixed64) {
  if (fixed64) return static_cast<std::size_t>(n) / 8;
  std::size_t c = 0;
  for (int i = 0; i < n; ++i)
    c += p[i] < 0x80 ? 1 : 0;
  return c;
}

}  // namespace

BatchShape scan_batch(std::span<const std::byte> body) {
  using google::protobuf::internal::WireFormatLite;
  namespace io = google::protobuf::io;
  BatchShape shape;
  const auto* data = reinterpret_cast<const std::uint8_t*>(body.data());
  io::CodedInputStream in(data, static_cast<int>(body.size()));
  std::size_t columns_max = 0;
  while (true) {
    const std::uint32_t tag = in.ReadTag();
    if (tag == 0) break;
    const int field = static_cast<int>(WireFormatLite::GetTagFieldNumber(tag));
    const auto type = WireFormatLite::GetTagWireType(tag);
    const int before = in.CurrentPosition();
    if (field == 4 && type == WireFormatLite::WIRETYPE_LENGTH_DELIMITED) {
      ++shape.observations;
    } else if (field == 7 && type == WireFormatLite::WIRETYPE_LENGTH_DELIMITED) {
      std::uint32_t len = 0;
      if (!in.ReadVarint32(&len)) return shape;
      const int start = in.CurrentPosition();
      if (len > body.size() - static_cast<std::size_t>(start)) return shape;  // truncated
      io::CodedInputStream col(data + start, static_cast<int>(len));
      while (true) {
        const std::uint32_t t = col.ReadTag();
        if (t == 0) break;
        const int f = static_cast<int>(WireFormatLite::GetTagFieldNumber(t));
        if (WireFormatLite::GetTagWireType(t) == WireFormatLite::WIRETYPE_LENGTH_DELIMITED) {
          std::uint32_t n = 0;
          if (!col.ReadVarint32(&n) || n > len) return shape;
          const void* ptr = nullptr;
          int avail = 0;
          if (!col.GetDirectBufferPointer(&ptr, &avail) || avail < static_cast<int>(n))
            return shape;
          // Fields 2, 4-7 are doubles; 1, 3 and 8 varints.
          const bool is_double = f == 2 || (f >= 4 && f <= 7);
          columns_max = std::max(columns_max, packed_count(static_cast<const std::uint8_t*>(ptr),
                                                           static_cast<int>(n), is_double));
          if (!col.Skip(static_cast<int>(n))) return shape;
        } else {
          // An unpacked element: one per tag.
          ++columns_max;
          if (!WireFormatLite::SkipField(&col, t)) return shape;
        }
      }
      if (!in.Skip(static_cast<int>(len))) return shape;
      continue;
    } else if (field < 1 || field > 8) {
      if (!WireFormatLite::SkipField(&in, tag)) return shape;
      shape.unknown_bytes += static_cast<std::size_t>(in.CurrentPosition() - before);
      continue;
    }
    if (!WireFormatLite::SkipField(&in, tag)) return shape;
  }
  shape.observations += columns_max;
  shape.readable =
      in.ConsumedEntireMessage() || in.CurrentPosition() == static_cast<int>(body.size());
  return shape;
}

bool has_unknown_fields(const wire::ObservationBatch& b) {
  const auto unknown = [](const google::protobuf::Message& m) {
    return !m.GetReflection()->GetUnknownFields(m).empty();
  };
  if (unknown(b)) return true;
  if (b.has_truth() && unknown(b.truth())) return true;
  if (b.has_columns() && unknown(b.columns())) return true;
  if (b.observations_size() == 0) return false;
  // One reflection for all the observations (looking it up per message costs more than the
  // check itself).
  const auto* reflection = b.observations(0).GetReflection();
  return std::any_of(
      b.observations().begin(), b.observations().end(),
      [&](const wire::Observation& o) { return !reflection->GetUnknownFields(o).empty(); });
}

std::uint64_t batch_content_hash(std::span<const std::byte> bytes) {
  const std::uint64_t n = bytes.size();
  return (static_cast<std::uint64_t>(crc32c(bytes)) << 32) |
         static_cast<std::uint32_t>(n ^ (n >> 32));
}

std::string quote_client_text(std::string_view text, std::size_t max) {
  std::string out;
  const std::size_t n = std::min(text.size(), max);
  out.reserve(n + 3);
  for (std::size_t i = 0; i < n; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    out.push_back(c >= 0x20 && c < 0x7f ? static_cast<char>(c) : '?');
  }
  if (text.size() > max) out += "...";
  return out;
}

}  // namespace rtda::server
