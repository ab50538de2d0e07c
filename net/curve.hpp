// CURVE on a ZeroMQ socket (docs/architecture.md §2, "Security"): the server side of the
// coordinator's endpoints and the client side of the worker group and the `rtda` tool.
#pragma once

#include <string>
#include <zmq.hpp>

#include "net/keys.hpp"

namespace rtda::net {

// Makes `socket` a CURVE server with `server`'s secret key, and sets its ZAP domain so a ZAP
// handler (server/security.hpp) can apply the policy for `domain` ("ingest", "control",
// "publish", "workers"). Call before bind(). Throws std::invalid_argument for a malformed key.
void make_curve_server(zmq::socket_t& socket, const CurveKeyPair& server,
                       const std::string& domain);

// Makes `socket` a CURVE client with its own key pair and the server's public key. Call before
// connect(). Throws std::invalid_argument for a malformed key.
void make_curve_client(zmq::socket_t& socket, const CurveKeyPair& client,
                       const std::string& server_public_z85);

// The client side as the programs' options give it: nothing when `server_key` (the server's
// public key: a file or Z85) is empty; else CURVE with the key pair in `client_secret_file`, or
// a fresh pair when that is empty. Call before connect(). Throws std::runtime_error naming a
// key file that cannot be used.
void setup_curve_client(zmq::socket_t& socket, const std::string& server_key,
                        const std::string& client_secret_file);

}  // namespace rtda::net
