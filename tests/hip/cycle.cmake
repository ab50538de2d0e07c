# Tests of the device-resident cycle (label hip). cycle_math_test runs on any machine (the
# shared normalisation arithmetic and the device transposes' index map, on the CPU);
# cycle_hip_test runs CycleEngine with Backend::kCpu and Backend::kGpu on the same cycles as one
# process without MPI (the offline tools' one-rank path) and under mpiexec on 2 ranks (the
# host-staged transposes), and skips, saying what it skips, when no GPU is present.
rtda_add_gtest(hip_cycle_math_test SOURCES cycle_math_test.cpp LABEL hip
               LIBS rtda_worker rtda_surrogate)

add_executable(hip_cycle_test cycle_hip_test.cpp)
target_link_libraries(hip_cycle_test PRIVATE rtda_worker rtda_obs rtda_sqg GTest::gtest MPI::MPI_CXX)
target_compile_options(hip_cycle_test PRIVATE ${RTDA_WARNINGS})
target_compile_definitions(hip_cycle_test PRIVATE
                           RTDA_TEST_VIT_WEIGHTS="${RTDA_ROOT}/configs/weights/vit-n64.h5")
# The residency bound is for one rank (with R ranks the transposes stage the ensemble through
# the host by design), so the 2-rank run leaves that test out.
add_test(NAME hip_cycle_test.ranks1 COMMAND $<TARGET_FILE:hip_cycle_test>)
add_test(NAME hip_cycle_test.ranks2
         COMMAND ${RTDA_MPIEXEC} -n 2 --oversubscribe $<TARGET_FILE:hip_cycle_test>
                 --gtest_filter=-*KeepsTheEnsembleOnTheDevice)
set_tests_properties(hip_cycle_test.ranks1 hip_cycle_test.ranks2 PROPERTIES
  LABELS hip TIMEOUT 600 ENVIRONMENT "${RTDA_TEST_ENV}"
  SKIP_REGULAR_EXPRESSION "\\[  SKIPPED \\]")
