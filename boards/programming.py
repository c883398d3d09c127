"""How to put a bitstream on each board: the commands, and how to install the tools they need.

Plain data (no Amaranth), so that a build report renders it anywhere: :func:`instructions` gives
the steps of one board for one bitstream, as a dict (``report.json``'s ``programming``) and as
Markdown lines (``report.md``'s "Programming the board").

- iCEBreaker: ``iceprog`` (Debian ``fpga-icestorm``) or ``openFPGALoader -b ice40_generic``
  writes the ``.bin`` to the SPI flash the iCE40 configures from.
- ULX3S: ``openFPGALoader -b ulx3s`` (Debian ``openfpgaloader``) or ``fujprog`` loads the
  ``.bit`` into the FPGA (add ``-f`` / ``-j flash`` to keep it over a power cycle).
- OrangeCrab: its DFU bootloader; the ``.bit`` needs the DFU suffix (``dfu-suffix``, which the
  build runs when it is installed), then ``dfu-util -D``; both tools are Debian's ``dfu-util``.

The model (``model.bin``, :mod:`csdformer.hw.flash_image`) goes to the same flash at the board's
:attr:`~csdformer.boards.targets.Board.model_offset`, once per model: a retrained model of the
same shape needs only this step (``MODEL_STEPS``). The ULX3S's bitstream must then go to the
flash too (``-f``) or be loaded after the model: the FPGA reads the model from the flash either
way. On the OrangeCrab the DFU bootloader writes only its bitstream slot, so the model goes
through JTAG (a cable on the board's JTAG pads).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Programming", "PROGRAMMING", "MODEL_STEPS", "instructions", "DFU_SUFFIX_SKIPPED"]

# The build's note when dfu-suffix was missing (boards/build.py): the report then lists that step.
DFU_SUFFIX_SKIPPED = "dfu-suffix not installed: step skipped"

APT_ICESTORM = "sudo apt install fpga-icestorm"
APT_OPENFPGALOADER = "sudo apt install openfpgaloader"
APT_DFU_UTIL = "sudo apt install dfu-util"
FUJPROG_RELEASES = "no Debian package: a release binary from https://github.com/kost/fujprog/releases"


@dataclass(frozen=True)
class Programming:
    """One board's way to load a bitstream. ``{bitstream}`` in a command is the bitstream's path."""

    how: str  # what to do with the board first, and where the bitstream goes
    steps: tuple[str, ...]  # commands, in order
    alternative: tuple[str, ...] = ()  # another tool's commands, same effect
    install: tuple[tuple[str, str], ...] = ()  # (tool, how to install it)
    suffix_step: str | None = None  # a step the build already did unless DFU_SUFFIX_SKIPPED is noted


PROGRAMMING: dict[str, Programming] = {
    "icebreaker": Programming(
        how="Plug the iCEBreaker into USB; the bitstream goes to its SPI flash, from which the iCE40 "
            "configures at power-up (then press the user button to reset the accelerator).",
        steps=("iceprog {bitstream}",),
        alternative=("openFPGALoader -b ice40_generic {bitstream}",),
        install=(("iceprog", APT_ICESTORM), ("openFPGALoader", APT_OPENFPGALOADER))),
    "ulx3s-85f": Programming(
        how="Plug the ULX3S into its US1 USB port; the bitstream is loaded into the FPGA (lost at power-off: "
            "add -f to openFPGALoader, or use fujprog -j flash, to write it to the flash instead).",
        steps=("openFPGALoader -b ulx3s {bitstream}",),
        alternative=("fujprog {bitstream}",),
        install=(("openFPGALoader", APT_OPENFPGALOADER), ("fujprog", FUJPROG_RELEASES))),
    "orangecrab-25f": Programming(
        how="Hold the OrangeCrab's button while plugging it into USB: its DFU bootloader starts (the LED "
            "fades). The bitstream needs the DFU suffix (vendor 1209, product 5af0) once; dfu-util then "
            "writes it to the flash and the board starts it.",
        steps=("dfu-suffix -v 1209 -p 5af0 -a {bitstream}", "dfu-util -D {bitstream}"),
        install=(("dfu-suffix, dfu-util", APT_DFU_UTIL),),
        suffix_step="dfu-suffix -v 1209 -p 5af0 -a {bitstream}"),
}


# Writing the model image (``{model}``) at ``{offset}`` (hex) of the board's flash: (how, commands).
MODEL_STEPS: dict[str, tuple[str, tuple[str, ...]]] = {
    "icebreaker": ("Write the model to the flash beside the bitstream (the same USB port):",
                   ("iceprog -o {offset} {model}",)),
    "ulx3s-85f": ("Write the model to the flash (and the bitstream with -f, so that it starts from the flash):",
                  ("openFPGALoader -b ulx3s -f -o {offset} --file-type bin {model}",
                   "openFPGALoader -b ulx3s -f {bitstream}")),
    "orangecrab-25f": ("Write the model to the flash through JTAG (its DFU bootloader writes only the bitstream "
                       "slot; CABLE: your JTAG adapter, see openFPGALoader --list-cables):",
                       ("openFPGALoader -c CABLE -f -o {offset} --file-type bin {model}",)),
}


def instructions(board: str, bitstream: str | None, notes=(), model: dict | None = None) -> dict | None:
    """The programming steps of ``board`` for ``bitstream`` (``None`` for an unknown board):
    ``{"how", "steps", "alternative", "install", "model"}`` with the paths filled in. A DFU
    suffix step the build already did (no :data:`DFU_SUFFIX_SKIPPED` among ``notes``) is left out.
    ``model`` (``{"image": path, "offset": int}``) adds the model's steps (:data:`MODEL_STEPS`)."""
    p = PROGRAMMING.get(board)
    if p is None:
        return None
    path = bitstream or ("top.bin" if board == "icebreaker" else "top.bit")
    skipped = any(n.startswith(DFU_SUFFIX_SKIPPED) for n in notes)
    steps = [s for s in p.steps if s != p.suffix_step or skipped or not bitstream]
    out = {"how": p.how, "steps": [s.format(bitstream=path) for s in steps],
           "alternative": [s.format(bitstream=path) for s in p.alternative],
           "install": [{"tool": t, "install": how} for t, how in p.install], "model": None}
    if model is not None and board in MODEL_STEPS:
        how, cmds = MODEL_STEPS[board]
        out["model"] = {"how": how, "steps": [c.format(model=model["image"], offset=f"0x{model['offset']:x}",
                                                       bitstream=path) for c in cmds]}
        if board == "orangecrab-25f":
            out["install"].append({"tool": "openFPGALoader", "install": APT_OPENFPGALOADER})
    return out


def markdown(info: dict | None) -> list[str]:
    """``report.md`` lines of :func:`instructions`' dict."""
    if not info:
        return []
    lines = ["", "## Programming the board", "", info["how"], "", "```sh"] + info["steps"] + ["```"]
    if info["alternative"]:
        lines += ["", "or:", "", "```sh"] + info["alternative"] + ["```"]
    if info.get("model"):
        lines += ["", info["model"]["how"], "", "```sh"] + info["model"]["steps"] + ["```"]
    lines += ["", "Tools: " + "; ".join(f"{x['tool']}: `{x['install']}`" if x["install"].startswith("sudo")
                                        else f"{x['tool']}: {x['install']}" for x in info["install"]) + "."]
    return lines
