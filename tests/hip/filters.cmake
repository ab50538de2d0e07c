# Tests of the filters' shared arithmetic and HIP kernels (label hip). The first three run
# on any machine (the CPU path of the shared arithmetic); the parity tests skip with a
# message when no GPU is present.
rtda_add_gtest(philox_hd_test SOURCES philox_hd_test.cpp LABEL hip LIBS rtda_core)
rtda_add_gtest(ensf_math_test SOURCES ensf_math_test.cpp LABEL hip LIBS rtda_filters)
rtda_add_gtest(letkf_math_test SOURCES letkf_math_test.cpp LABEL hip LIBS rtda_filters)
rtda_add_gtest(ensf_hip_test SOURCES ensf_hip_test.cpp LABEL hip LIBS rtda_filters_hip rtda_device rtda_filters)
rtda_add_gtest(letkf_hip_test SOURCES letkf_hip_test.cpp LABEL hip LIBS rtda_filters_hip rtda_device rtda_filters)
