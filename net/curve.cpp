#include "net/curve.hpp"

#include <fmt/format.h>
#include <stdexcept>

namespace rtda::net {
namespace {

template <int Option, int NullTerm>
void set_key_option(zmq::socket_t& socket, zmq::sockopt::array_option<Option, NullTerm> option,
                    const std::string& key_z85, const char* what) {
  if (!is_valid_z85_key(key_z85)) {
    throw std::invalid_argument(fmt::format("{}: {}", what, z85_key_problem(key_z85)));
  }
  // 41 bytes: libzmq takes a Z85 key as a NUL-terminated string.
  socket.set(option, zmq::const_buffer(key_z85.c_str(), key_z85.size() + 1));
}

}  // namespace

void make_curve_server(zmq::socket_t& socket, const CurveKeyPair& server,
                       const std::string& domain) {
  set_key_option(socket, zmq::sockopt::curve_secretkey, server.secret_z85, "server secret key");
  socket.set(zmq::sockopt::curve_server, true);
  socket.set(zmq::sockopt::zap_domain, domain);
}

void make_curve_client(zmq::socket_t& socket, const CurveKeyPair& client,
                       const std::string& server_public_z85) {
  set_key_option(socket, zmq::sockopt::curve_serverkey, server_public_z85, "server public key");
  set_key_option(socket, zmq::sockopt::curve_publickey, client.public_z85, "client public key");
  set_key_option(socket, zmq::sockopt::curve_secretkey, client.secret_z85, "client secret key");
}

void setup_curve_client(zmq::socket_t& socket, const std::string& server_key,
                        const std::string& client_secret_file) {
  if (server_key.empty()) return;
  const CurveKeyPair mine =
      client_secret_file.empty() ? generate_curve_keypair() : load_keypair(client_secret_file);
  make_curve_client(socket, mine, load_public_key(server_key));
}

}  // namespace rtda::net
