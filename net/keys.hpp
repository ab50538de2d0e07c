// CURVE key pairs and their files, shared by rtda-server, rtda-worker and rtda
// (docs/architecture.md §2, "Security"): Z85 keys, key files in the ZeroMQ "zcert" text style,
// and the rule that a secret key file only its owner may read.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace rtda::net {

// Both keys in Z85 text (40 characters each). `secret_z85` is empty for a public-only key.
struct CurveKeyPair {
  std::string public_z85;
  std::string secret_z85;
};

// True when this libzmq was built with CURVE (libsodium or tweetnacl).
bool curve_available();

// A fresh key pair from zmq_curve_keypair. Throws std::runtime_error without CURVE support.
CurveKeyPair generate_curve_keypair();

// True when `key` is exactly 40 characters that zmq_z85_decode accepts.
bool is_valid_z85_key(std::string_view key);

// Why `key` is not a valid Z85 key (its length, or its characters), for error messages.
std::string z85_key_problem(std::string_view key);

// The 40-character Z85 text of a 32-byte binary key; "" when `binary` is not 32 bytes.
std::string z85_encode_key(std::string_view binary);

// Writes `base.key` (public key only, mode 0644) and `base.key_secret` (both keys, mode 0600) in
// the zcert text format. The suffixes are appended, so base "keys/server" gives
// "keys/server.key". Each file is written to a temporary name and renamed into place; the secret
// file never exists with wider permissions than 0600. Throws std::runtime_error naming the file.
void save_keypair(const std::filesystem::path& base, const CurveKeyPair& keys);

// Reads both keys from a `.key_secret` file. Throws std::runtime_error naming the file and the
// problem (missing file, missing line, malformed key, a file group or others may read).
CurveKeyPair load_keypair(const std::filesystem::path& secret_file);

// The public key from a `.key` or `.key_secret` file, or `path_or_key` itself when no such file
// exists and it is a valid 40-character Z85 key. Throws std::runtime_error naming the file.
std::string load_public_key(const std::filesystem::path& path_or_key);

// The `public-key` and `secret-key` entries of a zcert file, each checked to be valid Z85. Only
// the keys' names matter; the section structure (metadata/curve) is accepted as czmq writes it
// but not enforced. Throws std::runtime_error naming the file (and the line of a bad key).
struct KeyFile {
  std::optional<std::string> public_z85;
  std::optional<std::string> secret_z85;
};
KeyFile read_key_file(const std::filesystem::path& path);

// `s` without leading and trailing blanks (space, tab, CR, LF): the lines of key files and
// allow-lists.
std::string trim(std::string_view s);

}  // namespace rtda::net
