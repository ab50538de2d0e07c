# Tests of the filters' shared arithmetic and HIP kernels (label hip).
