"""csdformer.quantize: the PyTorch side (model, LSQ, training, conversion)."""
