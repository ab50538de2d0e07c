# HIP kernels of the filters (EnSF reverse SDE, batched LETKF). Paths relative to kernels/hip.
list(APPEND RTDA_GPU_SOURCES ensf_hip.hip letkf_hip.hip observe_hip.hip)


# rtda_filters_hip: their host side (EnsfAnalysisHip, LetkfAnalysisHip), plain C++ for g++
# because it needs the filters' headers, which pull in HDF5 and Eigen that the hipcc command
# line does not see. It reaches the device only through ensf_hip_kernels.hpp and
# letkf_hip_kernels.hpp, whose kernels land in rtda_device. Without the HIP backend it still
# builds and links, and its analyses throw "no HIP backend".
add_library(rtda_filters_hip STATIC ${CMAKE_CURRENT_SOURCE_DIR}/ensf_hip.cpp
                                    ${CMAKE_CURRENT_SOURCE_DIR}/letkf_hip.cpp
                                    ${CMAKE_CURRENT_SOURCE_DIR}/observe_hip.cpp)
target_link_libraries(rtda_filters_hip PUBLIC rtda_device rtda_filters rtda_core)
target_compile_options(rtda_filters_hip PRIVATE ${RTDA_WARNINGS})
