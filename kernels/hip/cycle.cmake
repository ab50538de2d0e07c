# HIP kernels of the device-resident cycle (worker/device_ensemble.hpp, CycleEngine with
# --device hip): normalisation around the ViT forecast, ensemble statistics, prior inflation,
# transpose packing. Without the backend, cycle_hip.cpp stands in for them in rtda_device and
# throws.
list(APPEND RTDA_GPU_SOURCES cycle_hip.hip)
set(RTDA_GPU_STANDINS ${RTDA_GPU_STANDINS} ${CMAKE_CURRENT_SOURCE_DIR}/cycle_hip.cpp)
