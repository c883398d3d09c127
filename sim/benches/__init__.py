"""cocotb benches, one per hardware unit (run through csdformer.sim.benchlib.runner)."""
