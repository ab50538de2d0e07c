// The server's side of ZeroMQ CURVE (docs/architecture.md §2, "Security"): which client keys
// each endpoint admits (allowed-keys lists, feeder source grants) and a ZAP handler (RFC 27)
// that decides per endpoint domain which clients may complete the handshake. Key pairs, key
// files and the CURVE setup of a socket are in net/ (shared with rtda-worker and rtda).
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "net/curve.hpp"
#include "net/keys.hpp"

namespace rtda::server {

// Client keys allowed on an endpoint. `path` is either
//  - a directory: every `*.key` file in it (sorted by name), or
//  - a text file with one entry per line: a 40-character Z85 key or the path of a `.key` file
//    (relative paths are taken relative to the list file's directory). Blank lines and lines
//    starting with '#' are skipped, and anything after the entry that starts with '#' is a
//    comment. (A Z85-encoded 32-byte key never starts with '#', so this is unambiguous.)
// Duplicates are removed; order of first appearance is kept. Throws std::runtime_error naming
// the file and line.
std::vector<std::string> load_allowed_keys(const std::filesystem::path& path);

// The feeder sources granted per key in a list file: an entry may be followed by
// `sources=NAME[,NAME...]` (a NAME ending in '*' is a prefix). Keys without the word, and the
// directory and single-file forms, grant nothing (docs/security.md says what that means).
std::map<std::string, std::vector<std::string>> load_source_grants(
    const std::filesystem::path& path);

// A ZAP handler (ZeroMQ RFC 27) for one zmq::context_t. It binds "inproc://zeromq.zap.01" in the
// constructor, so sockets bound or connected afterwards are authenticated, and answers requests
// on its own thread.
//
// Policy, per ZAP domain (the domain a server socket sets with make_curve_server):
//  - allow_any(domain): any CURVE client that completes the handshake, i.e. knows the server's
//    public key;
//  - allow_keys(domain, keys): only CURVE clients whose public key is listed;
//  - no policy for the domain: deny (fail closed).
// Any mechanism other than CURVE (NULL, PLAIN) is denied. A plain socket with no ZAP domain does
// not consult ZAP in libzmq 4.3 at all, so unsecured endpoints in the same context are unaffected.
// The user id of an accepted CURVE peer is its public key in Z85, which the server reads from
// each message as the "User-Id" property (zmq::message_t::gets("User-Id")).
//
// Lifetime: destroy the authenticator before its context (declare it after the context member).
// The destructor stops the thread through an inproc control socket and joins it; it never blocks
// on the context. If the owner has already called zmq_ctx_shutdown, the thread sees ETERM and
// exits by itself. Destroying the context first would block zmq_ctx_term forever on the
// authenticator's still-open control socket.
//
// Policy setters and counters are thread-safe.
class ZapAuthenticator {
 public:
  explicit ZapAuthenticator(zmq::context_t& context);
  ~ZapAuthenticator();
  ZapAuthenticator(const ZapAuthenticator&) = delete;
  ZapAuthenticator& operator=(const ZapAuthenticator&) = delete;

  void allow_any(const std::string& domain);
  // Throws std::invalid_argument if a key is not 40 characters of Z85.
  void allow_keys(const std::string& domain, const std::vector<std::string>& keys_z85);

  // Handshakes accepted / refused so far on `domain`.
  std::uint64_t allowed(const std::string& domain) const;
  std::uint64_t denied(const std::string& domain) const;

 private:
  struct Policy {
    bool any_key = false;
    std::set<std::string> keys_z85;
  };
  struct Decision {
    bool allow = false;
    std::string status_text;
    std::string user_id;
  };

  void run();
  void answer_one();
  Decision decide(const std::string& domain, const std::string& address,
                  const std::string& mechanism, const std::string& credential);

  zmq::socket_t zap_;            // REP, owned by the thread after construction
  zmq::socket_t control_back_;   // PAIR, thread side
  zmq::socket_t control_front_;  // PAIR, owner side; used only by the destructor
  mutable std::mutex mutex_;
  std::map<std::string, Policy> policies_;
  std::map<std::string, std::uint64_t> allowed_;
  std::map<std::string, std::uint64_t> denied_;
  // (domain, key or mechanism) pairs already warned about; repeats are logged at debug level so
  // a client retrying every 100 ms cannot flood the log. Bounded; cleared when full.
  std::set<std::string> warned_;
  std::thread thread_;
};

}  // namespace rtda::server
