#include "server/service_util.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <system_error>

#include "server/ingest.hpp"

namespace rtda::server {
namespace fs = std::filesystem;

double wall_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

Envelope receive_envelope(zmq::socket_t& s) {
  Envelope e;
  std::vector<zmq::message_t> frames;
  while (true) {
    zmq::message_t m;
    if (!s.recv(m, zmq::recv_flags::dontwait)) break;
    const bool more = m.more();
    frames.push_back(std::move(m));
    if (!more) break;
  }
  if (frames.size() < 2) return e;  // not a routed message
  e.body = std::move(frames.back());
  frames.pop_back();
  e.head = std::move(frames);
  e.ok = true;
  return e;
}

void reply(zmq::socket_t& s, const Envelope& e, const std::string& payload) {
  for (const auto& h : e.head)
    s.send(zmq::buffer(h.data(), h.size()), zmq::send_flags::sndmore | zmq::send_flags::dontwait);
  s.send(zmq::buffer(payload), zmq::send_flags::dontwait);
}

bool fault_point(const char* point, std::int64_t cycle) {
  static const std::string spec = [] {
    const char* v = std::getenv("RTDA_FAULT");
    return std::string(v ? v : "");
  }();
  if (spec.empty()) return false;
  const std::string want = std::string(point) + ":" + std::to_string(cycle);
  if (spec != want) return false;
  spdlog::critical("RTDA_FAULT={}: exiting at {} of cycle {}", spec, point, cycle);
  std::_Exit(99);
}

void write_durably(const fs::path& path, const std::string& bytes) {
  const fs::path tmp = path.string() + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), tmp.string());
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      throw std::system_error(err, std::generic_category(), tmp.string());
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fdatasync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    throw std::system_error(err, std::generic_category(), tmp.string());
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0)
    throw std::system_error(errno, std::generic_category(), path.string());
  const int dfd = ::open(path.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

std::string bounded(const std::string& s, std::size_t max) {
  return quote_client_text(s, max);
}

}  // namespace rtda::server
