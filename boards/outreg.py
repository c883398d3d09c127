"""Block-RAM output registers on the ECP5: a flip-flop after a DP16KD moved into the RAM.

A DP16KD read without its output register (``REGMODE NOREG``, all Yosys infers) drives its data
4 to 6 ns after the clock edge, most of a 100-180 MHz cycle before any routing; with it
(``OUTREG``) about 1 ns, and the read takes one cycle more. Every bank of a
:class:`~csdformer.hw.memory.BankedMemory` registers the RAM's output and nothing else, in a
register without reset, so that register *is* the RAM's output register: this pass, run on Yosys's
netlist (JSON, after ``synth_ecp5``) before nextpnr, finds each DP16KD port whose every used data
output feeds exactly one flip-flop, on the RAM's clock, without reset, with one clock enable,
sets that port's ``REGMODE`` to ``OUTREG`` (its ``OCE`` to the flip-flops' enable), connects each
output to the flip-flop's output net and removes the flip-flops. Whatever else a port's outputs
drive (logic, or a register with a reset) leaves the port as it was.

Written from the DP16KD's documented behaviour (Lattice TN1264, the output register); the idea
is that of Rowan Goemans' Yosys plugin ``ecp5_infer_bram_outreg``, which YoWASP's Yosys cannot
load. nextpnr times a DP16KD by its ``REGMODE``.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Absorbed", "absorb_output_registers", "absorb_file"]

_WIDTH = 18  # data outputs a DP16KD port has (DO<port>0 .. DO<port>17)


@dataclass
class Absorbed:
    """What the pass did: ports given their output register, flip-flops removed, and the ports with
    used outputs that it left, each with why (``kept``: ``"<cell> <port>: <reason>"``)."""

    ports: int = 0
    flip_flops: int = 0
    kept: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (f"{self.ports} block-RAM read ports with their output register ({self.flip_flops} flip-flops "
                f"moved into the RAMs), {len(self.kept)} without")


def _param(cell: dict, name: str, default: str = "") -> str:
    return str(cell.get("parameters", {}).get(name, default)).strip()


def _receivers(module: dict) -> dict:
    """Each net bit → the ``(cell, port)`` inputs it drives (a module output as ``(None, name)``)."""
    seen = defaultdict(list)
    for name, cell in module["cells"].items():
        dirs = cell.get("port_directions", {})
        for port, bits in cell["connections"].items():
            if dirs.get(port) != "output":
                for b in bits:
                    seen[b].append((name, port))
    for pname, port in module.get("ports", {}).items():
        if port["direction"] != "input":
            for b in port["bits"]:
                seen[b].append((None, pname))
    return seen


def _port_flip_flops(module: dict, receivers: dict, ram: dict, X: str):
    """The flip-flops port ``X`` of DP16KD ``ram`` can absorb, ``[(output pin, flip-flop name)]``,
    and the enable they share; or ``(None, reason)``."""
    cells = module["cells"]
    con = ram["connections"]
    if _param(ram, f"REGMODE_{X}", "NOREG") != "NOREG":
        return None, "has its output register"
    if _param(ram, f"CLK{X}MUX", f"CLK{X}") != f"CLK{X}":
        return None, "clock inverted"
    if con.get(f"RST{X}", ["0"]) != ["0"]:
        return None, "output reset used"
    clock, pairs, enable = con.get(f"CLK{X}", [None])[0], [], None
    for i in range(_WIDTH):
        pin = f"DO{X}{i}"
        bit = con.get(pin, [None])[0]
        if not isinstance(bit, int) or not receivers.get(bit):
            continue  # unused output
        users = receivers[bit]
        if len(users) != 1 or users[0][0] is None:
            return None, f"{pin} drives {len(users)} inputs"
        ff_name, ff_port = users[0]
        ff = cells[ff_name]
        if ff["type"] != "TRELLIS_FF" or ff_port != "DI":
            return None, f"{pin} drives {ff['type']}.{ff_port}"
        fc = ff["connections"]
        if _param(ff, "CLKMUX", "CLK") != "CLK" or fc.get("CLK", [None])[0] != clock:
            return None, f"{pin}'s flip-flop has another clock"
        if _param(ff, "LSRMUX", "LSR") == "LSR" and fc.get("LSR", ["0"]) != ["0"]:
            return None, f"{pin}'s flip-flop has a reset"
        if _param(ff, "GSR", "ENABLED") != _param(ram, "GSR", "ENABLED"):
            return None, f"{pin}'s flip-flop's GSR differs"
        cemux = _param(ff, "CEMUX", "1")
        ce = fc.get("CE", ["1"])[0] if cemux == "CE" else "1" if cemux == "1" else None
        if ce is None:
            return None, f"{pin}'s flip-flop has enable {cemux}"
        if enable is not None and ce != enable:
            return None, "its flip-flops have different enables"
        enable = ce
        pairs.append((pin, ff_name))
    if not pairs:
        return None, None  # nothing used: nothing to say
    return pairs, enable


def absorb_output_registers(netlist: dict) -> Absorbed:
    """Move each absorbable flip-flop after a DP16KD into it (module docstring); ``netlist`` (Yosys
    JSON) is changed in place."""
    done = Absorbed()
    for module in netlist["modules"].values():
        cells = module.get("cells", {})
        receivers = _receivers(module)
        for rname in sorted(n for n, c in cells.items() if c["type"] == "DP16KD"):
            ram = cells[rname]
            for X in "AB":
                pairs, enable = _port_flip_flops(module, receivers, ram, X)
                if pairs is None:
                    if enable is not None:
                        done.kept.append(f"{rname} {X}: {enable}")
                    continue
                for pin, ff_name in pairs:
                    ram["connections"][pin] = [cells[ff_name]["connections"]["Q"][0]]
                    del cells[ff_name]
                ram["connections"][f"OCE{X}"] = [enable]
                ram["parameters"][f"REGMODE_{X}"] = "OUTREG"
                done.ports += 1
                done.flip_flops += len(pairs)
    return done


def absorb_file(path) -> Absorbed:
    """:func:`absorb_output_registers` on the Yosys JSON netlist at ``path``, written back in place
    (through a temporary file: a failure leaves the netlist as it was)."""
    path = Path(path)
    netlist = json.loads(path.read_text())
    done = absorb_output_registers(netlist)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(netlist))
    tmp.replace(path)
    return done
