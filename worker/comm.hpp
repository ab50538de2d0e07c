// The communicator of a worker group: MPI ranks, or one process without MPI at all.
//
// Every collective the worker code uses goes through this class, with MPI's signatures minus
// the communicator. Comm::single() is one process that never touches MPI: its collectives
// are copies (or nothing), so a one-rank `rtda analyze`, `forecast` or `experiment` outside
// mpiexec does not pay MPI's start-up (a singleton MPI_Init spawns a daemon: ~0.3-0.5 s).
// Both kinds give the same bits: on one rank no collective changes a value.
#pragma once

#include <mpi.h>

namespace rtda::worker {

class Comm {
 public:
  // An initialised MPI communicator (implicit: MPI_COMM_WORLD is a Comm).
  Comm(MPI_Comm comm);  // NOLINT(google-explicit-constructor)
  // One process, no MPI (MPI need not be initialised).
  static Comm single();

  bool uses_mpi() const { return mpi_; }
  // The MPI communicator (only when uses_mpi()).
  MPI_Comm handle() const { return comm_; }
  int rank() const { return rank_; }
  int size() const { return size_; }

  // MPI's collectives on this communicator; they return MPI's error code (MPI_SUCCESS).
  // The *_in_place forms use MPI_IN_PLACE on the receiving ranks.
  int bcast(void* buf, int count, MPI_Datatype type, int root) const;
  int allreduce_in_place(void* buf, int count, MPI_Datatype type, MPI_Op op) const;
  // At root in place; elsewhere `buf` is sent.
  int reduce_in_place(void* buf, int count, MPI_Datatype type, MPI_Op op, int root) const;
  int gatherv(const void* send, int count, MPI_Datatype type, void* recv, const int* counts,
              const int* displs, int root) const;
  int allgatherv(const void* send, int count, MPI_Datatype type, void* recv, const int* counts,
                 const int* displs) const;
  int alltoallv(const void* send, const int* send_counts, const int* send_displs, MPI_Datatype type,
                void* recv, const int* recv_counts, const int* recv_displs) const;
  int scatterv(const void* send, const int* counts, const int* displs, MPI_Datatype type,
               void* recv, int count, int root) const;
  int barrier() const;
  // Ranks of this communicator on this node (MPI_Comm_split_type(MPI_COMM_TYPE_SHARED)).
  int ranks_on_node() const;

 private:
  Comm() = default;
  MPI_Comm comm_ = MPI_COMM_NULL;
  bool mpi_ = false;
  int rank_ = 0, size_ = 1;
};

// Whether this process was started by an MPI launcher (mpiexec, srun): then the offline
// tools initialise MPI, otherwise they run as Comm::single().
bool launched_by_mpi();

}  // namespace rtda::worker
