#include "server/security.hpp"

#include <spdlog/spdlog.h>
#include <zmq.h>

#include <fmt/format.h>
#include <algorithm>
#include <atomic>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>

namespace rtda::server {
namespace {

constexpr const char* kZapEndpoint = "inproc://zeromq.zap.01";
constexpr std::size_t kMaxWarnedPairs = 1024;

std::string printable(const std::string& s) {
  std::string out;
  for (const char c : s) {
    if (c >= 0x20 && c < 0x7f) {
      out += c;
    } else {
      out += fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
    }
  }
  return out;
}

std::atomic<unsigned> next_control_id{0};

// One line of an allowed-keys list: the entry, and the sources granted with `sources=a,b`.
struct ListLine {
  std::string entry;
  std::vector<std::string> sources;
};

ListLine parse_list_line(const std::filesystem::path& path, int line_number, const std::string& t) {
  ListLine out;
  std::istringstream words(t);
  std::string word;
  words >> out.entry;
  while (words >> word) {
    if (word.front() == '#') break;
    if (word.rfind("sources=", 0) == 0) {
      std::string list = word.substr(8);
      std::size_t start = 0;
      while (start <= list.size()) {
        const std::size_t comma = list.find(',', start);
        const std::string name =
            list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        if (!name.empty()) out.sources.push_back(name);
        if (comma == std::string::npos) break;
        start = comma + 1;
      }
      if (out.sources.empty()) {
        throw std::runtime_error(
            fmt::format("allowed-keys file {} line {}: 'sources=' lists no source", path.string(),
                        line_number));
      }
      continue;
    }
    throw std::runtime_error(
        fmt::format("allowed-keys file {} line {}: unexpected text after the entry: '{}' "
                    "(expected sources=NAME[,NAME...] or a # comment)",
                    path.string(), line_number, word));
  }
  return out;
}

// Every entry of an allowed-keys path (directory, single key file or list file) as a public
// key with the sources a list line grants it, in order of appearance.
std::vector<std::pair<std::string, std::vector<std::string>>> read_key_list(
    const std::filesystem::path& path) {
  std::vector<std::pair<std::string, std::vector<std::string>>> entries;
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    std::vector<std::filesystem::path> files;
    for (const auto& entry : std::filesystem::directory_iterator(path)) {
      if (entry.is_regular_file() && entry.path().extension() == ".key") {
        files.push_back(entry.path());
      }
    }
    std::sort(files.begin(), files.end());
    for (const auto& file : files)
      entries.emplace_back(net::load_public_key(file), std::vector<std::string>{});
    return entries;
  }
  if (!std::filesystem::exists(path, ec)) {
    throw std::runtime_error(fmt::format("allowed-keys file {}: no such file", path.string()));
  }
  // A single key file (NAME.key from `rtda keys`) allows that one key.
  if (const net::KeyFile cert = net::read_key_file(path); cert.public_z85) {
    entries.emplace_back(*cert.public_z85, std::vector<std::string>{});
    return entries;
  }
  std::ifstream in(path);
  if (!in) {
    throw std::runtime_error(
        fmt::format("allowed-keys file {}: cannot open for reading", path.string()));
  }
  std::string line;
  int line_number = 0;
  while (std::getline(in, line)) {
    ++line_number;
    const std::string t = net::trim(line);
    if (t.empty() || t.front() == '#') continue;
    ListLine l = parse_list_line(path, line_number, t);
    if (net::is_valid_z85_key(l.entry)) {
      entries.emplace_back(l.entry, std::move(l.sources));
      continue;
    }
    std::filesystem::path key_path = l.entry;
    if (key_path.is_relative()) key_path = path.parent_path() / key_path;
    if (!std::filesystem::exists(key_path, ec)) {
      throw std::runtime_error(
          fmt::format("allowed-keys file {} line {}: '{}' is neither a 40-character Z85 key "
                      "nor an existing key file",
                      path.string(), line_number, l.entry));
    }
    try {
      entries.emplace_back(net::load_public_key(key_path), std::move(l.sources));
    } catch (const std::runtime_error& e) {
      throw std::runtime_error(
          fmt::format("allowed-keys file {} line {}: {}", path.string(), line_number, e.what()));
    }
  }
  return entries;
}

}  // namespace

std::map<std::string, std::vector<std::string>> load_source_grants(
    const std::filesystem::path& path) {
  std::map<std::string, std::vector<std::string>> grants;
  for (auto& [key, sources] : read_key_list(path)) {
    if (sources.empty()) continue;
    auto& g = grants[key];
    g.insert(g.end(), sources.begin(), sources.end());
  }
  return grants;
}

std::vector<std::string> load_allowed_keys(const std::filesystem::path& path) {
  std::vector<std::string> keys;
  for (auto& [key, sources] : read_key_list(path)) {
    if (std::find(keys.begin(), keys.end(), key) == keys.end()) keys.push_back(std::move(key));
  }
  return keys;
}

// ---------------------------------------------------------------------------------------------
// ZapAuthenticator

ZapAuthenticator::ZapAuthenticator(zmq::context_t& context)
    : zap_(context, zmq::socket_type::rep),
      control_back_(context, zmq::socket_type::pair),
      control_front_(context, zmq::socket_type::pair) {
  for (zmq::socket_t* s : {&zap_, &control_back_, &control_front_})
    s->set(zmq::sockopt::linger, 0);
  // Bound here rather than on the thread so that sockets created after the constructor returns
  // are guaranteed to find the handler. Throws EADDRINUSE if the context already has one.
  zap_.bind(kZapEndpoint);
  const std::string control =
      fmt::format("inproc://rtda-zap-control-{}-{}", static_cast<const void*>(this),
                  next_control_id.fetch_add(1));
  control_back_.bind(control);
  control_front_.connect(control);
  thread_ = std::thread([this] { run(); });
}

ZapAuthenticator::~ZapAuthenticator() {
  try {
    // Never blocks: on ETERM (context shutting down) the thread is already leaving by itself.
    control_front_.send(zmq::str_buffer("STOP"), zmq::send_flags::dontwait);
  } catch (const zmq::error_t&) {
  }
  if (thread_.joinable()) thread_.join();
}

void ZapAuthenticator::allow_any(const std::string& domain) {
  std::lock_guard lock(mutex_);
  Policy& policy = policies_[domain];
  policy.any_key = true;
  policy.keys_z85.clear();
}

void ZapAuthenticator::allow_keys(const std::string& domain,
                                  const std::vector<std::string>& keys_z85) {
  std::set<std::string> keys;
  for (const auto& key : keys_z85) {
    if (!net::is_valid_z85_key(key)) {
      throw std::invalid_argument(
          fmt::format("allow_keys({}): '{}': {}", domain, key, net::z85_key_problem(key)));
    }
    keys.insert(key);
  }
  std::lock_guard lock(mutex_);
  Policy& policy = policies_[domain];
  policy.any_key = false;
  policy.keys_z85 = std::move(keys);
}

std::uint64_t ZapAuthenticator::allowed(const std::string& domain) const {
  std::lock_guard lock(mutex_);
  const auto it = allowed_.find(domain);
  return it == allowed_.end() ? 0 : it->second;
}

std::uint64_t ZapAuthenticator::denied(const std::string& domain) const {
  std::lock_guard lock(mutex_);
  const auto it = denied_.find(domain);
  return it == denied_.end() ? 0 : it->second;
}

void ZapAuthenticator::run() {
  for (;;) {
    zmq::pollitem_t items[] = {{zap_.handle(), 0, ZMQ_POLLIN, 0},
                               {control_back_.handle(), 0, ZMQ_POLLIN, 0}};
    try {
      zmq::poll(items, 2, std::chrono::milliseconds(-1));
      if (items[1].revents & ZMQ_POLLIN) break;
      if (items[0].revents & ZMQ_POLLIN) answer_one();
    } catch (const zmq::error_t& e) {
      if (e.num() == ETERM) break;
      if (e.num() == EINTR) continue;
      spdlog::error("ZAP handler: {}; authentication stops, new handshakes will fail", e.what());
      break;
    }
  }
  // Close on this thread: zmq_ctx_term in the owner can then complete.
  zap_.close();
  control_back_.close();
}

void ZapAuthenticator::answer_one() {
  std::vector<std::string> frames;
  for (;;) {
    zmq::message_t part;
    if (!zap_.recv(part, zmq::recv_flags::none)) return;
    frames.emplace_back(part.to_string());
    if (!part.more()) break;
    if (frames.size() > 16) {  // drain anything abnormally long without storing it
      while (part.more() && zap_.recv(part, zmq::recv_flags::none)) {
      }
      break;
    }
  }
  // RFC 27 request: version, request id, domain, address, identity, mechanism, credentials...
  const std::string request_id = frames.size() > 1 ? frames[1] : std::string();
  Decision decision;
  if (frames.size() < 6 || frames[0] != "1.0") {
    decision.status_text = "malformed ZAP request";
    spdlog::warn("ZAP handler: malformed request ({} frames)", frames.size());
  } else {
    decision = decide(frames[2], frames[3], frames[5], frames.size() > 6 ? frames[6] : "");
  }
  // A REP socket must answer every request, even a malformed one, to stay usable.
  const std::string status = decision.allow ? "200" : "400";
  zap_.send(zmq::str_buffer("1.0"), zmq::send_flags::sndmore);
  zap_.send(zmq::buffer(request_id), zmq::send_flags::sndmore);
  zap_.send(zmq::buffer(status), zmq::send_flags::sndmore);
  zap_.send(zmq::buffer(decision.status_text), zmq::send_flags::sndmore);
  zap_.send(zmq::buffer(decision.user_id), zmq::send_flags::sndmore);
  zap_.send(zmq::message_t(), zmq::send_flags::none);  // metadata: none
}

ZapAuthenticator::Decision ZapAuthenticator::decide(const std::string& domain,
                                                    const std::string& address,
                                                    const std::string& mechanism,
                                                    const std::string& credential) {
  Decision d;
  std::string key;
  if (mechanism == "CURVE") key = net::z85_encode_key(credential);

  std::lock_guard lock(mutex_);
  const auto policy = policies_.find(domain);
  if (policy == policies_.end()) {
    d.status_text = "no policy for this domain";
  } else if (mechanism != "CURVE") {
    d.status_text = "CURVE required";
  } else if (key.empty()) {
    d.status_text = "malformed CURVE credential";
  } else if (policy->second.any_key || policy->second.keys_z85.count(key) != 0) {
    d.allow = true;
    d.status_text = "OK";
    d.user_id = key;
  } else {
    d.status_text = "client key not allowed";
  }

  if (d.allow) {
    ++allowed_[domain];
    spdlog::debug("ZAP: allowed {} client {} on domain '{}'", mechanism, key, domain);
    return d;
  }
  ++denied_[domain];
  const std::string who = key.empty() ? mechanism : key;
  if (warned_.size() >= kMaxWarnedPairs) warned_.clear();
  const bool first = warned_.insert(domain + '\n' + who).second;
  spdlog::log(first ? spdlog::level::warn : spdlog::level::debug,
              "ZAP: denied domain='{}' address={} mechanism={} key={}: {}{}", printable(domain),
              printable(address), printable(mechanism), key.empty() ? "-" : key, d.status_text,
              first ? " (repeats of this client are logged at debug level)" : "");
  return d;
}

}  // namespace rtda::server
