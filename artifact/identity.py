"""The model id: which trained model an artifact is, independent of how any hardware encodes it.

A CRC-32 of the artifact's name, its window ``T``, and every layer's name, kind and arrays (as
little-endian int64 values, in layer and array-name order). The flash image's header carries it
(:mod:`csdformer.hw.flash_image`), the accelerator reads it from there, and ``csdformer run``
compares what the device reports with the artifact's: a board running another model (or another
training of the same one) is named as such. The same artifact gives the same id on any board,
lane count or fabric.
"""

from __future__ import annotations

import zlib

import numpy as np

__all__ = ["model_id"]


def model_id(a) -> int:
    crc = zlib.crc32(f"{a.name}\0{a.T}".encode())
    for layer in a.layers:
        crc = zlib.crc32(f"\0{layer.name}\0{layer.kind}".encode(), crc)
        for key in sorted(layer.arrays):
            crc = zlib.crc32(key.encode(), crc)
            crc = zlib.crc32(np.ascontiguousarray(layer.arrays[key], dtype="<i8").tobytes(), crc)
    return crc
