// Transport-side helpers of the server: CURVE keys and ZAP authentication, Prometheus metrics
// and their HTTP endpoint, and rate limits. Every socket binds to 127.0.0.1 on a free port and
// every receive has a timeout, so a failure shows as a failed assertion, never a hang.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include "net/curve.hpp"
#include "net/keys.hpp"

#include "server/metrics.hpp"
#include "server/rate_limit.hpp"
#include "server/security.hpp"

namespace rtda::server {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using net::curve_available;
using net::CurveKeyPair;
using net::generate_curve_keypair;
using net::is_valid_z85_key;
using net::load_keypair;
using net::load_public_key;
using net::make_curve_client;
using net::make_curve_server;
using net::save_keypair;

constexpr int kReceiveTimeoutMs = 5000;

// A fresh directory under the system temp dir, removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "rtda-netsec-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
}

// Asserts that `f` throws std::runtime_error whose message contains every one of `needles`.
template <typename F>
void expect_error_mentions(F&& f, const std::vector<std::string>& needles) {
  try {
    f();
    ADD_FAILURE() << "expected an exception";
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    for (const auto& needle : needles) {
      EXPECT_NE(what.find(needle), std::string::npos)
          << "'" << what << "' lacks '" << needle << "'";
    }
  }
}

void set_test_options(zmq::socket_t& s) {
  s.set(zmq::sockopt::linger, 0);
  s.set(zmq::sockopt::rcvtimeo, kReceiveTimeoutMs);
  s.set(zmq::sockopt::sndtimeo, kReceiveTimeoutMs);
}

std::string last_endpoint(zmq::socket_t& s) {
  return s.get(zmq::sockopt::last_endpoint);
}

// Waits until `condition` holds or `timeout` passes; returns the final value of `condition`.
template <typename F>
bool wait_for(F&& condition, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Keys and key files

TEST(CurveKeys, GeneratedKeysAreDistinct40CharacterZ85) {
  ASSERT_TRUE(curve_available()) << "libzmq was built without CURVE";
  const CurveKeyPair a = generate_curve_keypair();
  const CurveKeyPair b = generate_curve_keypair();
  EXPECT_TRUE(is_valid_z85_key(a.public_z85));
  EXPECT_TRUE(is_valid_z85_key(a.secret_z85));
  EXPECT_NE(a.public_z85, a.secret_z85);
  EXPECT_NE(a.public_z85, b.public_z85);
  EXPECT_FALSE(is_valid_z85_key(a.public_z85.substr(1)));
  EXPECT_FALSE(is_valid_z85_key(std::string(40, '"')));  // '"' is not in the Z85 alphabet
}

TEST(CurveKeys, SaveLoadRoundTripWithPermissions) {
  TempDir dir;
  const CurveKeyPair keys = generate_curve_keypair();
  const fs::path base = dir.path() / "server";
  save_keypair(base, keys);

  const fs::path pub = dir.path() / "server.key";
  const fs::path sec = dir.path() / "server.key_secret";
  ASSERT_TRUE(fs::exists(pub));
  ASSERT_TRUE(fs::exists(sec));
  EXPECT_EQ(fs::status(pub).permissions(), static_cast<fs::perms>(0644));
  EXPECT_EQ(fs::status(sec).permissions(), static_cast<fs::perms>(0600));

  const CurveKeyPair loaded = load_keypair(sec);
  EXPECT_EQ(loaded.public_z85, keys.public_z85);
  EXPECT_EQ(loaded.secret_z85, keys.secret_z85);
  EXPECT_EQ(load_public_key(pub), keys.public_z85);
  EXPECT_EQ(load_public_key(sec), keys.public_z85);

  // The public file must not leak the secret.
  std::ifstream in(pub);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text.find(keys.secret_z85), std::string::npos);
  EXPECT_NE(text.find("public-key = \"" + keys.public_z85 + "\""), std::string::npos);
  EXPECT_EQ(text.front(), '#');  // comment header
}

TEST(CurveKeys, SavingAgainTightensAnExistingSecretFile) {
  TempDir dir;
  const fs::path sec = dir.path() / "k.key_secret";
  write_text(sec, "old");
  fs::permissions(sec, static_cast<fs::perms>(0666));
  save_keypair(dir.path() / "k", generate_curve_keypair());
  EXPECT_EQ(fs::status(sec).permissions(), static_cast<fs::perms>(0600));
}

TEST(CurveKeys, PublicKeyMayBeGivenInline) {
  const CurveKeyPair keys = generate_curve_keypair();
  EXPECT_EQ(load_public_key(keys.public_z85), keys.public_z85);
}

TEST(CurveKeys, BadKeyFilesGiveMessagesNamingTheFile) {
  TempDir dir;
  const fs::path missing = dir.path() / "missing.key";
  expect_error_mentions([&] { load_public_key(missing); }, {missing.string(), "no such file"});
  expect_error_mentions([&] { load_keypair(missing); }, {missing.string(), "no such file"});

  const fs::path no_line = dir.path() / "empty.key";
  write_text(no_line, "# nothing here\ncurve\n");
  expect_error_mentions([&] { load_public_key(no_line); }, {no_line.string(), "public-key"});

  const fs::path short_key = dir.path() / "short.key";
  write_text(short_key, "curve\n    public-key = \"abc\"\n");
  expect_error_mentions([&] { load_public_key(short_key); },
                        {short_key.string(), "3 characters", "40"});

  const fs::path bad_chars = dir.path() / "bad.key";
  write_text(bad_chars, "curve\n    public-key = \"" + std::string(40, '~') + "\"\n");
  expect_error_mentions([&] { load_public_key(bad_chars); }, {bad_chars.string(), "Z85"});

  // A public-only file is not a key pair.
  save_keypair(dir.path() / "pub", generate_curve_keypair());
  const fs::path pub = dir.path() / "pub.key";
  expect_error_mentions([&] { load_keypair(pub); }, {pub.string(), "secret-key"});
}

TEST(CurveKeys, SecretKeyFileReadableByOthersIsRefused) {
  TempDir dir;
  save_keypair(dir.path() / "s", generate_curve_keypair());
  const fs::path secret = dir.path() / "s.key_secret";
  EXPECT_NO_THROW(load_keypair(secret));
  fs::permissions(secret, fs::perms::group_read, fs::perm_options::add);
  expect_error_mentions([&] { load_keypair(secret); }, {secret.string(), "0640", "chmod 600"});
}

TEST(CurveKeys, SourceGrantsComeFromSourcesWordsOfAListFile) {
  TempDir dir;
  const CurveKeyPair a = generate_curve_keypair();
  const CurveKeyPair b = generate_curve_keypair();
  const CurveKeyPair c = generate_curve_keypair();
  const fs::path list = dir.path() / "feeders.txt";
  write_text(list, a.public_z85 + " sources=radar-1,radar-2  # two radars\n" + b.public_z85 +
                       " sources=sat-*\n" + c.public_z85 + "\n");
  EXPECT_EQ(load_allowed_keys(list),
            (std::vector<std::string>{a.public_z85, b.public_z85, c.public_z85}));
  const auto grants = load_source_grants(list);
  ASSERT_EQ(grants.size(), 2u);
  EXPECT_EQ(grants.at(a.public_z85), (std::vector<std::string>{"radar-1", "radar-2"}));
  EXPECT_EQ(grants.at(b.public_z85), (std::vector<std::string>{"sat-*"}));
  write_text(list, a.public_z85 + " source=radar-1\n");
  expect_error_mentions([&] { load_allowed_keys(list); }, {list.string(), "line 1", "source="});
}

TEST(CurveKeys, AllowedKeysFromListFileWithCommentsAndKeyPaths) {
  TempDir dir;
  const CurveKeyPair a = generate_curve_keypair();
  const CurveKeyPair b = generate_curve_keypair();
  save_keypair(dir.path() / "b", b);
  const fs::path list = dir.path() / "allowed.txt";
  write_text(list,
             "# feeders\n\n  " + a.public_z85 + "   # radar feeder\nb.key\n" + a.public_z85 + "\n");
  EXPECT_EQ(load_allowed_keys(list), (std::vector<std::string>{a.public_z85, b.public_z85}));

  write_text(list, "# feeders\nnot-a-key\n");
  expect_error_mentions([&] { load_allowed_keys(list); }, {list.string(), "line 2", "not-a-key"});
  expect_error_mentions([&] { load_allowed_keys(dir.path() / "nope.txt"); }, {"nope.txt"});
}

TEST(CurveKeys, AllowedKeysFromDirectoryOfKeyFiles) {
  TempDir dir;
  const CurveKeyPair a = generate_curve_keypair();
  const CurveKeyPair b = generate_curve_keypair();
  save_keypair(dir.path() / "a", a);
  save_keypair(dir.path() / "b", b);
  write_text(dir.path() / "README", "not a key");
  // Only *.key files count; the .key_secret files are skipped.
  EXPECT_EQ(load_allowed_keys(dir.path()), (std::vector<std::string>{a.public_z85, b.public_z85}));
}

TEST(CurveKeys, MalformedKeysAreRejectedWhenConfiguringSockets) {
  zmq::context_t ctx;
  zmq::socket_t s(ctx, zmq::socket_type::dealer);
  set_test_options(s);
  CurveKeyPair bad{"short", "short"};
  EXPECT_THROW(make_curve_server(s, bad, "ingest"), std::invalid_argument);
  EXPECT_THROW(make_curve_client(s, generate_curve_keypair(), "short"), std::invalid_argument);
}

// ---------------------------------------------------------------------------------------------
// CURVE + ZAP

// A CURVE ROUTER with a ZAP policy on domain "ingest", and helpers to connect clients.
class CurveRouterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_keys_ = generate_curve_keypair();
    allowed_keys_ = generate_curve_keypair();
    auth_ = std::make_unique<ZapAuthenticator>(ctx_);
    auth_->allow_keys("ingest", {allowed_keys_.public_z85});
    router_ = std::make_unique<zmq::socket_t>(ctx_, zmq::socket_type::router);
    set_test_options(*router_);
    make_curve_server(*router_, server_keys_, "ingest");
    router_->bind("tcp://127.0.0.1:*");
    endpoint_ = last_endpoint(*router_);
  }
  void TearDown() override {
    // Sockets, then the authenticator, then (implicitly) the context.
    clients_.clear();
    router_.reset();
    auth_.reset();
  }

  zmq::socket_t& curve_client(const CurveKeyPair& keys) {
    auto& s = plain_client_unconnected();
    make_curve_client(s, keys, server_keys_.public_z85);
    s.connect(endpoint_);
    return s;
  }
  zmq::socket_t& plain_client() {
    auto& s = plain_client_unconnected();
    s.connect(endpoint_);
    return s;
  }

  // True if the router receives a message within `wait`.
  bool router_receives_within(std::chrono::milliseconds wait) {
    zmq::pollitem_t item{router_->handle(), 0, ZMQ_POLLIN, 0};
    return zmq::poll(&item, 1, wait) > 0;
  }

  zmq::context_t ctx_;
  std::unique_ptr<ZapAuthenticator> auth_;
  std::unique_ptr<zmq::socket_t> router_;
  std::vector<std::unique_ptr<zmq::socket_t>> clients_;
  CurveKeyPair server_keys_;
  CurveKeyPair allowed_keys_;
  std::string endpoint_;

 private:
  zmq::socket_t& plain_client_unconnected() {
    clients_.push_back(std::make_unique<zmq::socket_t>(ctx_, zmq::socket_type::dealer));
    set_test_options(*clients_.back());
    return *clients_.back();
  }
};

TEST_F(CurveRouterTest, ListedClientGetsItsReplyAndIsIdentifiedByKey) {
  zmq::socket_t& client = curve_client(allowed_keys_);
  ASSERT_TRUE(client.send(zmq::str_buffer("hello"), zmq::send_flags::none));

  zmq::message_t identity;
  zmq::message_t body;
  ASSERT_TRUE(router_->recv(identity, zmq::recv_flags::none)) << "timed out";
  ASSERT_TRUE(router_->recv(body, zmq::recv_flags::none));
  EXPECT_EQ(body.to_string(), "hello");
  // The ZAP user id travels with every message from this peer.
  EXPECT_EQ(std::string(body.gets("User-Id")), allowed_keys_.public_z85);

  router_->send(identity, zmq::send_flags::sndmore);
  router_->send(zmq::str_buffer("welcome"), zmq::send_flags::none);
  zmq::message_t reply;
  ASSERT_TRUE(client.recv(reply, zmq::recv_flags::none)) << "timed out";
  EXPECT_EQ(reply.to_string(), "welcome");
  EXPECT_GE(auth_->allowed("ingest"), 1u);
  EXPECT_EQ(auth_->denied("ingest"), 0u);
}

TEST_F(CurveRouterTest, UnlistedClientNeverGetsThroughAndIsCounted) {
  zmq::socket_t& intruder = curve_client(generate_curve_keypair());
  // DEALER queues the message locally while the handshake fails, so the send succeeds.
  intruder.send(zmq::str_buffer("let me in"), zmq::send_flags::dontwait);
  ASSERT_TRUE(wait_for([&] { return auth_->denied("ingest") >= 1; }, 5s));

  // A listed client still gets through afterwards, and is the only one heard.
  zmq::socket_t& friendly = curve_client(allowed_keys_);
  friendly.send(zmq::str_buffer("hello"), zmq::send_flags::none);
  zmq::message_t identity;
  zmq::message_t body;
  ASSERT_TRUE(router_->recv(identity, zmq::recv_flags::none)) << "timed out";
  ASSERT_TRUE(router_->recv(body, zmq::recv_flags::none));
  EXPECT_EQ(body.to_string(), "hello");
  EXPECT_FALSE(router_receives_within(300ms));
}

TEST_F(CurveRouterTest, PlainClientNeverGetsThrough) {
  zmq::socket_t& plain = plain_client();
  plain.send(zmq::str_buffer("plain"), zmq::send_flags::dontwait);
  // A NULL client fails the mechanism check of the greeting, before ZAP is asked at all.
  EXPECT_FALSE(router_receives_within(500ms));
}

TEST(ZapAuthenticator, NullMechanismOnAPolicedDomainIsDenied) {
  zmq::context_t ctx;
  ZapAuthenticator auth(ctx);
  auth.allow_any("control");
  zmq::socket_t router(ctx, zmq::socket_type::router);
  zmq::socket_t dealer(ctx, zmq::socket_type::dealer);
  set_test_options(router);
  set_test_options(dealer);
  // A socket that sets a ZAP domain but no CURVE: libzmq asks ZAP about the NULL mechanism.
  router.set(zmq::sockopt::zap_domain, "control");
  router.bind("tcp://127.0.0.1:*");
  dealer.connect(last_endpoint(router));
  dealer.send(zmq::str_buffer("plain"), zmq::send_flags::dontwait);
  EXPECT_TRUE(wait_for([&] { return auth.denied("control") >= 1; }, 5s));
  zmq::pollitem_t item{router.handle(), 0, ZMQ_POLLIN, 0};
  EXPECT_EQ(zmq::poll(&item, 1, 300ms), 0);
}

TEST(ZapAuthenticator, AllowAnyAcceptsEveryClientThatKnowsTheServerKey) {
  zmq::context_t ctx;
  ZapAuthenticator auth(ctx);
  auth.allow_any("publish");
  const CurveKeyPair server_keys = generate_curve_keypair();
  zmq::socket_t router(ctx, zmq::socket_type::router);
  zmq::socket_t dealer(ctx, zmq::socket_type::dealer);
  set_test_options(router);
  set_test_options(dealer);
  make_curve_server(router, server_keys, "publish");
  router.bind("tcp://127.0.0.1:*");
  make_curve_client(dealer, generate_curve_keypair(), server_keys.public_z85);
  dealer.connect(last_endpoint(router));
  dealer.send(zmq::str_buffer("hi"), zmq::send_flags::none);
  zmq::message_t identity;
  zmq::message_t body;
  ASSERT_TRUE(router.recv(identity, zmq::recv_flags::none)) << "timed out";
  ASSERT_TRUE(router.recv(body, zmq::recv_flags::none));
  EXPECT_EQ(body.to_string(), "hi");
  EXPECT_EQ(auth.allowed("publish"), 1u);
}

TEST(ZapAuthenticator, RejectsMalformedAllowedKeys) {
  zmq::context_t ctx;
  ZapAuthenticator auth(ctx);
  EXPECT_THROW(auth.allow_keys("ingest", {"not a key"}), std::invalid_argument);
}

TEST(ZapAuthenticator, DestructorReturnsPromptlyAfterContextShutdown) {
  zmq::context_t ctx;
  {
    ZapAuthenticator auth(ctx);
    ctx.shutdown();  // the thread sees ETERM; the destructor must still not block
  }
  SUCCEED();
}

// ---------------------------------------------------------------------------------------------
// Metrics

// The registry and serializer are prometheus-cpp's; what the endpoint serves is its text format.
TEST(Metrics, RenderIsTheTextExpositionOfTheRegistry) {
  prometheus::Registry registry;
  auto& requests = prometheus::BuildCounter()
                       .Name("rtda_obs_received_total")
                       .Help("Observations received.")
                       .Register(registry);
  requests.Add({{"source", "radar"}}).Increment(3);
  prometheus::BuildGauge()
      .Name("rtda_cycle_lag_seconds")
      .Help("Lag of the last analysis.")
      .Register(registry)
      .Add({})
      .Set(-1.5);
  const std::string text = render_metrics(registry);
  EXPECT_NE(text.find("# HELP rtda_obs_received_total Observations received.\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("# TYPE rtda_obs_received_total counter\n"), std::string::npos) << text;
  EXPECT_NE(text.find("rtda_obs_received_total{source=\"radar\"} 3"), std::string::npos) << text;
  EXPECT_NE(text.find("# TYPE rtda_cycle_lag_seconds gauge\n"), std::string::npos) << text;
  EXPECT_NE(text.find("rtda_cycle_lag_seconds -1.5"), std::string::npos) << text;
}

// ---------------------------------------------------------------------------------------------
// HTTP endpoint

// Runs a MetricsHttpEndpoint on its own poll loop; the test talks to it with POSIX sockets.
class MetricsHttpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    prometheus::BuildCounter()
        .Name("rtda_requests_total")
        .Help("Requests.")
        .Register(registry_)
        .Add({})
        .Increment(7);
    endpoint_ = std::make_unique<MetricsHttpEndpoint>(ctx_, "tcp://127.0.0.1:*", registry_);
    const std::string ep = endpoint_->bound_endpoint();
    port_ = std::stoi(ep.substr(ep.rfind(':') + 1));
    loop_ = std::thread([this] {
      while (!stop_) {
        zmq::pollitem_t item{endpoint_->socket().handle(), 0, ZMQ_POLLIN, 0};
        if (zmq::poll(&item, 1, 20ms) > 0) endpoint_->handle_readable();
      }
    });
  }
  void TearDown() override {
    stop_ = true;
    loop_.join();
    endpoint_.reset();
  }

  // Sends `request` (in pieces of `chunk` bytes) and returns everything read until the server
  // closes the connection (or 5 s pass).
  std::string exchange(const std::string& request, std::size_t chunk = 1 << 20) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    EXPECT_GE(fd, 0);
    timeval tv{kReceiveTimeoutMs / 1000, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port_));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ::close(fd);
      ADD_FAILURE() << "connect failed";
      return {};
    }
    for (std::size_t off = 0; off < request.size(); off += chunk) {
      const std::size_t n = std::min(chunk, request.size() - off);
      if (::send(fd, request.data() + off, n, MSG_NOSIGNAL) < 0) break;  // server may close
      if (chunk < request.size()) std::this_thread::sleep_for(5ms);
    }
    std::string response;
    char buffer[4096];
    for (;;) {
      const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
      if (n <= 0) break;  // 0: closed by the server; <0: timeout or reset
      response.append(buffer, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return response;
  }

  zmq::context_t ctx_;
  prometheus::Registry registry_;
  std::unique_ptr<MetricsHttpEndpoint> endpoint_;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread loop_;
};

TEST_F(MetricsHttpTest, GetMetricsReturnsTheRenderedRegistry) {
  const std::string body = render_metrics(registry_);
  const std::string response =
      exchange("GET /metrics HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n");
  EXPECT_EQ(response.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << response;
  EXPECT_NE(response.find("Content-Type: text/plain; version=0.0.4"), std::string::npos);
  EXPECT_NE(response.find("Content-Length: " + std::to_string(body.size()) + "\r\n"),
            std::string::npos);
  ASSERT_GE(response.size(), body.size());
  EXPECT_EQ(response.substr(response.size() - body.size()), body);
  EXPECT_NE(body.find("rtda_requests_total 7\n"), std::string::npos);
}

TEST_F(MetricsHttpTest, RequestSplitAcrossPacketsIsAssembled) {
  const std::string response = exchange("GET /metrics?x=1 HTTP/1.0\r\nHost: a\r\n\r\n", 3);
  EXPECT_EQ(response.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << response;
}

TEST_F(MetricsHttpTest, OtherPathIs404) {
  const std::string response = exchange("GET /other HTTP/1.1\r\n\r\n");
  EXPECT_EQ(response.rfind("HTTP/1.1 404 ", 0), 0u) << response;
}

TEST_F(MetricsHttpTest, OtherMethodIs405) {
  const std::string response = exchange("POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(response.rfind("HTTP/1.1 405 ", 0), 0u) << response;
}

TEST_F(MetricsHttpTest, GarbageGets400AndTheEndpointKeepsServing) {
  const std::string garbage("\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03 junk\r\n\r\n", 21);
  EXPECT_EQ(exchange(garbage).rfind("HTTP/1.1 400 ", 0), 0u);
  EXPECT_EQ(exchange(std::string(9000, 'A')).rfind("HTTP/1.1 400 ", 0), 0u);
  EXPECT_EQ(exchange("\r\n\r\n").rfind("HTTP/1.1 400 ", 0), 0u);
  // A client that connects and leaves without a word must not disturb anything either.
  {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port_));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    ::close(fd);
  }
  EXPECT_EQ(exchange("GET /metrics HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 200 OK\r\n", 0), 0u);
}

TEST(MetricsHttp, BindsPortZeroAndWildcardToAFreePort) {
  zmq::context_t ctx;
  prometheus::Registry registry;
  for (const std::string address : {"tcp://127.0.0.1:0", "tcp://127.0.0.1:*"}) {
    MetricsHttpEndpoint endpoint(ctx, address, registry);
    const std::string bound = endpoint.bound_endpoint();
    EXPECT_EQ(bound.rfind("tcp://127.0.0.1:", 0), 0u) << bound;
    EXPECT_GT(std::stoi(bound.substr(bound.rfind(':') + 1)), 0) << bound;
  }
}

// ---------------------------------------------------------------------------------------------
// Rate limits

TEST(RateLimiter, BurstThenSteadyRate) {
  RateLimiter limiter(2.0, 4.0);  // 2 per second, bursts of 4
  for (int i = 0; i < 4; ++i)
    EXPECT_TRUE(limiter.try_take(1, 10.0)) << i;
  EXPECT_FALSE(limiter.try_take(1, 10.0));
  EXPECT_DOUBLE_EQ(limiter.retry_after(1, 10.0), 0.5);
  EXPECT_FALSE(limiter.try_take(1, 10.25));
  EXPECT_TRUE(limiter.try_take(1, 10.5));
  // A long idle period refills only up to the burst.
  EXPECT_TRUE(limiter.try_take(4, 100.0));
  EXPECT_FALSE(limiter.try_take(1, 100.0));
}

TEST(RateLimiter, RequestsLargerThanTheBurstNeverSucceed) {
  RateLimiter limiter(10.0, 5.0);
  EXPECT_FALSE(limiter.try_take(6, 0.0));
  EXPECT_TRUE(std::isinf(limiter.retry_after(6, 0.0)));
  EXPECT_TRUE(limiter.try_take(5, 0.0));  // the failed request took nothing
}

TEST(RateLimiter, ClockGoingBackwardsAddsNoTokens) {
  RateLimiter limiter(1.0, 1.0);
  EXPECT_TRUE(limiter.try_take(1, 50.0));
  EXPECT_FALSE(limiter.try_take(1, 10.0));
  EXPECT_FALSE(limiter.try_take(1, 50.5));
  EXPECT_TRUE(limiter.try_take(1, 51.0));
}

TEST(RateLimiter, ZeroRateIsUnlimitedAndBadParametersThrow) {
  RateLimiter unlimited(0.0, 0.0);
  for (int i = 0; i < 1000; ++i)
    EXPECT_TRUE(unlimited.try_take(1e6, 0.0));
  EXPECT_EQ(unlimited.retry_after(1e9, 0.0), 0.0);
  EXPECT_THROW(RateLimiter(-1.0, 1.0), std::invalid_argument);
  EXPECT_THROW(RateLimiter(1.0, 0.0), std::invalid_argument);
}

TEST(PerSourceRateLimiter, SourcesHaveIndependentBuckets) {
  PerSourceRateLimiter limiter(1.0, 2.0);
  EXPECT_TRUE(limiter.try_take("radar", 2, 0.0));
  EXPECT_FALSE(limiter.try_take("radar", 1, 0.0));
  EXPECT_TRUE(limiter.try_take("buoy", 2, 0.0));
  EXPECT_DOUBLE_EQ(limiter.retry_after("radar", 1, 0.0), 1.0);
  EXPECT_EQ(limiter.retry_after("unknown", 1, 0.0), 0.0);
  EXPECT_EQ(limiter.tracked_sources(), 2u);
}

TEST(PerSourceRateLimiter, EvictsTheLeastRecentlyUsedSource) {
  PerSourceRateLimiter limiter(1.0, 1.0, 2);
  EXPECT_TRUE(limiter.try_take("a", 1, 0.0));
  EXPECT_TRUE(limiter.try_take("b", 1, 0.0));
  EXPECT_FALSE(limiter.try_take("a", 1, 0.0));  // touches "a": "b" is now least recent
  EXPECT_TRUE(limiter.try_take("c", 1, 0.0));   // evicts "b"
  EXPECT_EQ(limiter.tracked_sources(), 2u);
  EXPECT_FALSE(limiter.try_take("a", 1, 0.0));  // "a" kept its empty bucket
  EXPECT_TRUE(limiter.try_take("b", 1, 0.0));   // "b" was forgotten: full bucket again
}

TEST(PerSourceRateLimiter, ZeroRateIsUnlimitedAndTracksNothing) {
  PerSourceRateLimiter limiter(0.0, 0.0);
  for (int i = 0; i < 100; ++i)
    EXPECT_TRUE(limiter.try_take("s" + std::to_string(i), 1e9, 0.0));
  EXPECT_EQ(limiter.tracked_sources(), 0u);
}

}  // namespace
}  // namespace rtda::server
