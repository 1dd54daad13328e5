"""GradBench-style eval kernels, one module per eval."""
