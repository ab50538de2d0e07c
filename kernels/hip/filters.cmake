# HIP kernels of the filters (EnSF reverse SDE, batched LETKF). Paths relative to kernels/hip.
list(APPEND RTDA_HIP_SOURCES)
