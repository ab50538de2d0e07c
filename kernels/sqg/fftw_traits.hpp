// Thin precision-generic layer over FFTW's double and float APIs, used by the SQG model.
#pragma once

#include <fftw3.h>

#include <complex>
#include <cstddef>
#include <memory>
#include <mutex>
#include <new>
#include <vector>

namespace rtda::sqg::detail {

// FFTW's planner is not thread-safe; plan creation and destruction take this lock.
// Executing a plan on new arrays (fftw_execute_dft_*) is thread-safe and needs no lock.
inline std::mutex& fftw_planner_mutex() {
  static std::mutex m;
  return m;
}

template <typename Real>
struct Fftw;

template <>
struct Fftw<double> {
  using Plan = fftw_plan;
  using Cplx = fftw_complex;
  static void* malloc(std::size_t n) { return fftw_malloc(n); }
  static void free(void* p) { fftw_free(p); }
  static Plan many_r2c(int rank, const int* n, int howmany, double* in, int idist,
                       std::complex<double>* out, int odist, unsigned flags) {
    return fftw_plan_many_dft_r2c(rank, n, howmany, in, nullptr, 1, idist,
                                  reinterpret_cast<Cplx*>(out), nullptr, 1, odist, flags);
  }
  static Plan many_c2r(int rank, const int* n, int howmany, std::complex<double>* in, int idist,
                       double* out, int odist, unsigned flags) {
    return fftw_plan_many_dft_c2r(rank, n, howmany, reinterpret_cast<Cplx*>(in), nullptr, 1, idist,
                                  out, nullptr, 1, odist, flags);
  }
  static void exec_r2c(Plan p, double* in, std::complex<double>* out) {
    fftw_execute_dft_r2c(p, in, reinterpret_cast<Cplx*>(out));
  }
  static void exec_c2r(Plan p, std::complex<double>* in, double* out) {
    fftw_execute_dft_c2r(p, reinterpret_cast<Cplx*>(in), out);
  }
  // In-place or out-of-place complex transforms over arbitrary strides (FFTW's guru API).
  static Plan guru_dft(int rank, const fftw_iodim* dims, int howmany_rank,
                       const fftw_iodim* howmany, std::complex<double>* in,
                       std::complex<double>* out, int sign, unsigned flags) {
    return fftw_plan_guru_dft(rank, dims, howmany_rank, howmany, reinterpret_cast<Cplx*>(in),
                              reinterpret_cast<Cplx*>(out), sign, flags);
  }
  static void exec_dft(Plan p, std::complex<double>* in, std::complex<double>* out) {
    fftw_execute_dft(p, reinterpret_cast<Cplx*>(in), reinterpret_cast<Cplx*>(out));
  }
  static void destroy(Plan p) { fftw_destroy_plan(p); }
};

template <>
struct Fftw<float> {
  using Plan = fftwf_plan;
  using Cplx = fftwf_complex;
  static void* malloc(std::size_t n) { return fftwf_malloc(n); }
  static void free(void* p) { fftwf_free(p); }
  static Plan many_r2c(int rank, const int* n, int howmany, float* in, int idist,
                       std::complex<float>* out, int odist, unsigned flags) {
    return fftwf_plan_many_dft_r2c(rank, n, howmany, in, nullptr, 1, idist,
                                   reinterpret_cast<Cplx*>(out), nullptr, 1, odist, flags);
  }
  static Plan many_c2r(int rank, const int* n, int howmany, std::complex<float>* in, int idist,
                       float* out, int odist, unsigned flags) {
    return fftwf_plan_many_dft_c2r(rank, n, howmany, reinterpret_cast<Cplx*>(in), nullptr, 1, idist,
                                   out, nullptr, 1, odist, flags);
  }
  static void exec_r2c(Plan p, float* in, std::complex<float>* out) {
    fftwf_execute_dft_r2c(p, in, reinterpret_cast<Cplx*>(out));
  }
  static void exec_c2r(Plan p, std::complex<float>* in, float* out) {
    fftwf_execute_dft_c2r(p, reinterpret_cast<Cplx*>(in), out);
  }
  static Plan guru_dft(int rank, const fftw_iodim* dims, int howmany_rank,
                       const fftw_iodim* howmany, std::complex<float>* in, std::complex<float>* out,
                       int sign, unsigned flags) {
    return fftwf_plan_guru_dft(rank, dims, howmany_rank, howmany, reinterpret_cast<Cplx*>(in),
                               reinterpret_cast<Cplx*>(out), sign, flags);
  }
  static void exec_dft(Plan p, std::complex<float>* in, std::complex<float>* out) {
    fftwf_execute_dft(p, reinterpret_cast<Cplx*>(in), reinterpret_cast<Cplx*>(out));
  }
  static void destroy(Plan p) { fftwf_destroy_plan(p); }
};

// std::allocator replacement giving FFTW-aligned storage, so that every buffer meets the
// alignment the plans were made with (required for the new-array execute functions).
template <typename T>
struct FftwAllocator {
  using value_type = T;
  FftwAllocator() = default;
  template <typename U>
  FftwAllocator(const FftwAllocator<U>&) {}
  T* allocate(std::size_t n) {
    void* p = fftw_malloc(n * sizeof(T));
    if (!p) throw std::bad_alloc();
    return static_cast<T*>(p);
  }
  void deallocate(T* p, std::size_t) { fftw_free(p); }
  template <typename U>
  bool operator==(const FftwAllocator<U>&) const {
    return true;
  }
};

template <typename T>
using AlignedVector = std::vector<T, FftwAllocator<T>>;

}  // namespace rtda::sqg::detail
