# HIP kernels of the surrogate (matrix products, attention, layer norm, GELU).
list(APPEND RTDA_HIP_SOURCES)
