"""Formal proofs of the phase units that hold arithmetic state (issue 16): a harness per unit
(an Amaranth module wrapping the unit, with ``Assume``/``Assert`` and the unit's reference step
function written beside it), run by :mod:`.runner` through SymbiYosys (``yowasp-sby``) and Yices.

- :mod:`.accumulate`: :class:`~csdformer.hw.scatter.LaneAccumulate` (ACC's read-modify-write).
- :mod:`.sink`: :class:`~csdformer.hw.sink.SinkArray` (DIF neurons: charge, fire, reset).
- :mod:`.ranges`: the bounds the widths are derived from, which the proofs assume.
- :mod:`.proofs`: the proofs by name, with their depths, and the one-bit-narrower variants.
"""
