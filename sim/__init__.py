"""csdformer.sim: the integer golden model (numpy, no torch) and cocotb benches."""
