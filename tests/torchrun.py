"""Run ``csdformer train`` on the digits config under torchrun: two CPU processes (gloo)."""

import subprocess
import sys

import yaml

from csdformer.quantize import config as C


def torchrun_train(tmp_path, port: int, **train) -> tuple[subprocess.CompletedProcess, object]:
    """One epoch of digits in two processes, with ``train`` fields set; (process, run folder)."""
    raw = C.load("digits").to_dict()
    raw["train"].update({"epochs": 1, "warmup_epochs": 0, "threads": 1, **train})
    cfg = tmp_path / "ddp.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    out = tmp_path / "run"
    p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                        str(port), "-m", "csdformer", "train", str(cfg), "--out", str(out), "--quiet"],
                       capture_output=True, text=True, timeout=600, check=False)
    assert p.returncode == 0, p.stderr[-2000:]
    return p, out
