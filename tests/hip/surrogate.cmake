# Tests of the surrogate's shared arithmetic and HIP kernels (label hip).
# nn_math_test runs on any machine (the CPU side of the shared arithmetic); nn_hip_test and
# vit_hip_test hold each kernel and the whole forward pass against the CPU path and skip,
# saying what they skip, when no GPU is present.
rtda_add_gtest(hip_nn_math_test SOURCES nn_math_test.cpp LABEL hip LIBS rtda_surrogate)
rtda_add_gtest(hip_nn_kernels_test SOURCES nn_hip_test.cpp LABEL hip
               LIBS rtda_surrogate_hip rtda_device rtda_surrogate)
rtda_add_gtest(hip_vit_forward_test SOURCES vit_hip_test.cpp LABEL hip TIMEOUT 300
               LIBS rtda_surrogate_hip rtda_device rtda_surrogate)
