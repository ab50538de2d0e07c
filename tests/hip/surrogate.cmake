# Tests of the surrogate's shared arithmetic and HIP kernels (label hip).
