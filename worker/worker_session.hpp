// What the worker group does with the messages of the server (docs/architecture.md §5), on
// every rank: rank 0's link receives each message and broadcasts it; a welcome (re)starts the
// ensemble (fresh from the nature run, from a checkpoint, or as it is), a task runs its cycle
// through CycleEngine (forecast unless made ahead, analysis, result, surrogate adaptation,
// checkpoint, the next cycle's forecast while its window fills). Every call into CycleEngine
// is in worker_session.cpp.
#pragma once

#include <mpi.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cycle_engine.hpp"
#include "hip/device.hpp"
#include "rtda.pb.h"
#include "worker_link.hpp"

namespace rtda::worker {

class WorkerSession {
 public:
  // `link`: rank 0's link to the server (nullptr on the other ranks). `overrides`: --set keys
  // applied on top of the configuration each welcome carries. `choice`: this rank's
  // device::choose, where it computes; rank 0's names the device in every result's lineage.
  WorkerSession(MPI_Comm comm, std::vector<std::string> overrides, device::Choice choice,
                WorkerLink* link);
  ~WorkerSession();

  // Collective. Says hello and serves messages until the server says stop (returns 0) or
  // refuses the group (returns 2). Throws what a cycle throws; the group is then unusable.
  int run();
  // The cycle of the task being worked on (-1 before the first), for error reports.
  std::int64_t current_cycle() const { return current_cycle_; }

 private:
  void start(const wire::Welcome& w);
  void run_task(const wire::CycleTask& task, double received);
  // The result of `task`'s analysis for the server (rank 0).
  wire::WorkerToServer result_message(const wire::CycleTask& task, const CycleOutcome& out,
                                      double received, double forecast_seconds,
                                      double forecast_wait) const;
  // The cycle of the ensemble for a hello: the newest analysis, -1 without an ensemble.
  std::int64_t held_cycle() const { return have_state_ ? analysed_ : -1; }

  MPI_Comm comm_;
  int rank_ = 0;
  int ranks_ = 1;
  std::vector<std::string> overrides_;
  device::Choice device_;
  WorkerLink* link_;

  std::unique_ptr<CycleEngine> engine_;
  std::string engine_hash_;
  std::int64_t analysed_ = -1;   // the cycle of the ensemble's newest analysis
  bool forecast_ready_ = false;  // the ensemble is already at analysed + 1
  bool have_state_ = false;
  std::string checkpoint_dir_;
  double ahead_forecast_seconds_ = 0;  // the forecast made while the window was filling
  // The checkpoint cycle this group's ensemble was restarted from, -1 for the initial one.
  std::int64_t restarted_from_ = -1;
  std::int64_t current_cycle_ = -1;
};

}  // namespace rtda::worker
