// Functions that both backends share: compiled for the host by g++ and, inside .hip files,
// for the host and the GPU by hipcc. Keep them free of Eigen, exceptions, std::vector and
// anything else a device cannot run; take raw pointers and sizes.
#pragma once

#if defined(__HIPCC__) || defined(__CUDACC__)
#define RTDA_HD __host__ __device__
#else
#define RTDA_HD
#endif
