// rtda-worker: the worker group (docs/architecture.md §1, §5).
//   mpiexec -n R rtda-worker --server tcp://HOST:PORT [--config FILE] [--set k=v]
// Rank 0 holds the link to the server (worker_link.hpp: a DEALER socket owned by a link thread
// that keeps the heartbeats going while the ranks compute); every message it receives is
// broadcast to all ranks, which hold their members and run forecast and analysis through
// CycleEngine (worker_session.hpp).
#include <mpi.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "config/config.hpp"
#include "hip/device.hpp"
#include "worker_link.hpp"
#include "worker_session.hpp"

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  MPI_Comm comm = MPI_COMM_WORLD;
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);

  CLI::App app{"rtda-worker: the worker group (run under mpiexec; rank 0 connects)"};
  std::string server, config_path, server_key, client_key, level = "info";
  std::vector<std::string> overrides;
  app.add_option("--server", server, "the server's workers endpoint (server.workers)")->required();
  app.add_option("--config", config_path,
                 "this group's configuration; its science keys must match the server's");
  app.add_option("--set", overrides,
                 "override a key on top of the server's configuration (model.threads, ...)");
  app.add_option("--server-key", server_key, "the server's public key (CURVE): file or Z85");
  app.add_option("--key", client_key, "this group's .key_secret (CURVE); default: a fresh pair");
  app.add_option("--log-level", level, "trace, debug, info, warn, error");
  std::string device_request = "auto";
  app.add_option("--device", device_request,
                 "auto | cpu | gpu (hip | cuda: gpu of that toolchain): where each rank "
                 "computes; auto takes a GPU when one is visible (one rank per GPU: device = "
                 "local rank modulo devices)")
      ->check(CLI::IsMember(std::vector<std::string>(std::begin(rtda::device::kRequestNames),
                                                     std::end(rtda::device::kRequestNames))));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = rank == 0 ? app.exit(e) : (e.get_exit_code());
    MPI_Finalize();
    return rc;
  }
  spdlog::set_level(spdlog::level::from_str(level));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ rtda-worker[" + std::to_string(rank) + "]: %v");

  // The device of each rank; a rank that cannot have what was asked stops the whole group.
  rtda::device::Choice dev;
  std::string device_error;
  try {
    dev = rtda::device::choose(rtda::device::parse_request(device_request),
                               rtda::device::local_rank_from_environment(rank));
    spdlog::info("{}", dev.reason);
  } catch (const std::exception& e) {
    device_error = e.what();
  }
  int device_ok = device_error.empty() ? 1 : 0;
  MPI_Allreduce(MPI_IN_PLACE, &device_ok, 1, MPI_INT, MPI_MIN, comm);
  if (!device_ok) {
    if (!device_error.empty()) spdlog::error("{}", device_error);
    MPI_Finalize();
    return 2;
  }

  int rc = 0;
  std::unique_ptr<rtda::worker::WorkerLink> link;
  std::unique_ptr<rtda::worker::WorkerSession> session;
  try {
    rtda::worker::HelloInfo hello;
    hello.ranks = static_cast<std::uint32_t>(size);
    hello.device = std::string(rtda::device::name(dev.backend));
    hello.device_name = dev.device_name;
    hello.toolchain = dev.toolchain;
    if (!config_path.empty())
      hello.config_hash = rtda::config::science_hash(rtda::config::load(config_path));
    if (rank == 0)
      link = std::make_unique<rtda::worker::WorkerLink>(server, server_key, client_key, hello);
    session = std::make_unique<rtda::worker::WorkerSession>(comm, overrides, dev, link.get());
    rc = session->run();
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    rc = 1;
    // Tell the server why before the group goes down (it stops re-dispatching a cycle that
    // keeps failing); then every rank is taken down, none is left waiting in a collective.
    if (rank == 0 && link) {
      link->send_error(session ? session->current_cycle() : -1, e.what(), true);
      link->flush();
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    MPI_Abort(comm, 1);
  }
  session.reset();  // the engine's MPI resources go before MPI_Finalize
  MPI_Finalize();
  return rc;
}
