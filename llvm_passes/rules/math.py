"""Rules for math intrinsics and libm calls."""
