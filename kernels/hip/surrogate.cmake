# HIP kernels of the surrogate (matrix products, attention, layer norm, GELU).
list(APPEND RTDA_GPU_SOURCES nn_hip.hip)

# rtda_surrogate_hip: the host side of the surrogate's HIP backend (VitForwardHip), compiled by
# g++; it reaches the device only through nn_hip.hpp, whose kernels (nn_hip.hip, above) land in
# rtda_device. Without the backend nn_hip.cpp stands in for them and throws, so everything
# that uses the HIP surrogate still builds and links.
add_library(rtda_surrogate_hip STATIC ${CMAKE_CURRENT_SOURCE_DIR}/vit_hip.cpp)
if(NOT RTDA_HAVE_GPU)
  target_sources(rtda_surrogate_hip PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/nn_hip.cpp)
endif()
target_link_libraries(rtda_surrogate_hip PUBLIC rtda_device rtda_surrogate)
target_compile_options(rtda_surrogate_hip PRIVATE ${RTDA_WARNINGS})
