#include "comm.hpp"

#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace rtda::worker {
namespace {

// The element sizes of the types the worker sends (a single process cannot ask MPI).
std::size_t type_size(MPI_Datatype t) {
  if (t == MPI_DOUBLE || t == MPI_UNSIGNED_LONG_LONG || t == MPI_INT64_T || t == MPI_UINT64_T)
    return 8;
  if (t == MPI_FLOAT || t == MPI_INT) return 4;
  if (t == MPI_CHAR || t == MPI_BYTE) return 1;
  throw std::logic_error("Comm::single: an MPI datatype it does not know");
}

void copy(void* to, const void* from, int count, MPI_Datatype t) {
  if (count > 0 && to != from)
    std::memmove(to, from, static_cast<std::size_t>(count) * type_size(t));
}

char* at(void* base, int displ, MPI_Datatype t) {
  return static_cast<char*>(base) + static_cast<std::size_t>(displ) * type_size(t);
}
const char* at(const void* base, int displ, MPI_Datatype t) {
  return static_cast<const char*>(base) + static_cast<std::size_t>(displ) * type_size(t);
}

}  // namespace

Comm::Comm(MPI_Comm comm) : comm_(comm), mpi_(true) {
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &size_);
}

Comm Comm::single() {
  return Comm();
}

int Comm::bcast(void* buf, int count, MPI_Datatype type, int root) const {
  return mpi_ ? MPI_Bcast(buf, count, type, root, comm_) : MPI_SUCCESS;
}

int Comm::allreduce_in_place(void* buf, int count, MPI_Datatype type, MPI_Op op) const {
  return mpi_ ? MPI_Allreduce(MPI_IN_PLACE, buf, count, type, op, comm_) : MPI_SUCCESS;
}

int Comm::reduce_in_place(void* buf, int count, MPI_Datatype type, MPI_Op op, int root) const {
  if (!mpi_) return MPI_SUCCESS;
  return MPI_Reduce(rank_ == root ? MPI_IN_PLACE : buf, buf, count, type, op, root, comm_);
}

int Comm::gatherv(const void* send, int count, MPI_Datatype type, void* recv, const int* counts,
                  const int* displs, int root) const {
  if (mpi_) return MPI_Gatherv(send, count, type, recv, counts, displs, type, root, comm_);
  copy(at(recv, displs[0], type), send, count, type);
  return MPI_SUCCESS;
}

int Comm::allgatherv(const void* send, int count, MPI_Datatype type, void* recv, const int* counts,
                     const int* displs) const {
  if (mpi_) return MPI_Allgatherv(send, count, type, recv, counts, displs, type, comm_);
  copy(at(recv, displs[0], type), send, count, type);
  return MPI_SUCCESS;
}

int Comm::alltoallv(const void* send, const int* send_counts, const int* send_displs,
                    MPI_Datatype type, void* recv, const int* recv_counts,
                    const int* recv_displs) const {
  if (mpi_) {
    return MPI_Alltoallv(send, send_counts, send_displs, type, recv, recv_counts, recv_displs, type,
                         comm_);
  }
  copy(at(recv, recv_displs[0], type), at(send, send_displs[0], type), send_counts[0], type);
  return MPI_SUCCESS;
}

int Comm::scatterv(const void* send, const int* counts, const int* displs, MPI_Datatype type,
                   void* recv, int count, int root) const {
  if (mpi_) return MPI_Scatterv(send, counts, displs, type, recv, count, type, root, comm_);
  copy(recv, at(send, displs[0], type), count, type);
  return MPI_SUCCESS;
}

int Comm::barrier() const {
  return mpi_ ? MPI_Barrier(comm_) : MPI_SUCCESS;
}

int Comm::ranks_on_node() const {
  if (!mpi_) return 1;
  MPI_Comm node = MPI_COMM_NULL;
  MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node);
  int on_node = 1;
  if (node != MPI_COMM_NULL) {
    MPI_Comm_size(node, &on_node);
    MPI_Comm_free(&node);
  }
  return on_node;
}

bool launched_by_mpi() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "PMI_RANK",
                        "SLURM_STEP_NUM_TASKS", "MPI_LOCALNRANKS"}) {
    if (std::getenv(v) != nullptr) return true;
  }
  return false;
}

}  // namespace rtda::worker
