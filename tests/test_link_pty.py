"""The host runtime against a faulty device over a real pseudo-terminal (issue 16, done-when 3).

The device is :class:`~csdformer.firmware.device_model.DeviceModel` answering with the golden
model of the shipped ``digits`` artifact, served behind ``os.openpty()`` by
:class:`~csdformer.firmware.pty_device.PtyDevice` with faults on its answers: garbage, bit flips,
truncation, late answers, a slow device, a device that vanishes. The host opens the pty by name,
as a serial port (pyserial), through :class:`~csdformer.firmware.runtime.Device` and through
``csdformer run`` itself. Every answer must be the golden one for its image, or the run must end
with a clear one-line error; a late answer is never taken for another image.
"""

import random

import numpy as np
import pytest

from csdformer import CsdformerError
from csdformer.artifact import load, resolve_artifact
from csdformer.cli import main
from csdformer.datasets import load as load_dataset
from csdformer.firmware import protocol as P
from csdformer.firmware.device_model import DeviceModel
from csdformer.firmware.pty_device import VANISH, PtyDevice, flip_bit, garbage, late, truncate
from csdformer.firmware.runtime import Device, RunStopped, run_images
from csdformer.sim.runner import run

TIMEOUT = 0.3  # the host's answer timeout in these tests (s)


@pytest.fixture(scope="module")
def art():
    return load(resolve_artifact("digits"))


@pytest.fixture(scope="module")
def images():
    x, _ = load_dataset("digits", "test")
    return x[:16]


@pytest.fixture(scope="module")
def gold(art, images):
    return run(art, images, delay=art.delay).logits


def device_model(art):
    from csdformer.firmware.cli_run import expected_model_id

    C, H, W = art.input.shape

    def compute(pixels, delay):
        img = np.frombuffer(pixels, dtype=np.uint8).reshape(H, W, C).transpose(2, 0, 1)
        logits = run(art, img[None], delay=delay).logits[0]
        return P.Result(int(np.argmax(logits)), 1000 + delay, tuple(int(v) for v in logits))

    info = P.Info(C * H * W, art.num_classes, art.T, 1, expected_model_id(art, 1))
    return DeviceModel(info, compute, timeout=0.05)


def _check(got, gold):
    assert np.array_equal(got.logits, gold[:len(got.logits)])
    assert np.array_equal(got.predictions, gold[:len(got.logits)].argmax(axis=1))


def test_clean_device_over_a_pty(art, images, gold):
    with PtyDevice(device_model(art)) as pty, Device(pty.port, timeout=TIMEOUT) as dev:
        assert dev.info().model_id == device_model(art).info.model_id
        got = run_images(dev, images, art.delay, progress=False)
    _check(got, gold)
    assert len(got.logits) == len(images) and dev.stats["retries"] == 0


FAULTS = {
    # name: what the device sends for answer k (answer 0 is INFO's)
    "garbage": lambda k, f: garbage(f, bytes([0x00, P.SYNC, 0x81, 0x13, P.SYNC, P.SYNC, 0x82, 0x0A, 0x00, 0x7F])),
    "bit_flips": lambda k, f: flip_bit(f, 8 * (k % len(f)) + k % 8) if k % 2 else [f],
    "truncation": lambda k, f: truncate(f, k % (len(f) - 1) + 1) if k % 3 == 1 else [f],
    "slow": lambda k, f: late(f, TIMEOUT / 3),
    "late": lambda k, f: late(f, 1.5 * TIMEOUT) if k % 4 == 2 else [f],
}


@pytest.mark.parametrize("fault", FAULTS)
def test_faulty_device_every_answer_right(art, images, gold, fault):
    """Faults the runtime recovers from (retries): every image's answer is the golden one."""
    with PtyDevice(device_model(art), fault=FAULTS[fault]) as pty, Device(pty.port, timeout=TIMEOUT) as dev:
        dev.info()
        got = run_images(dev, images[:8], art.delay, progress=False)
    _check(got, gold)
    assert len(got.logits) == 8
    if fault in ("bit_flips", "truncation", "late"):
        assert dev.stats["retries"] > 0


def test_late_answer_never_taken_for_the_next_image(art, images, gold):
    """Image 0's answer comes after the host gave up on it (no retries): the host then asks for image
    1 (the device, still busy, drops that request) and must return image 1's answer (its retry's),
    dropping image 0's that arrives first."""
    fault = lambda k, f: late(f, 1.5 * TIMEOUT) if k == 1 else [f]  # noqa: E731
    with PtyDevice(device_model(art), fault=fault) as pty, Device(pty.port, timeout=TIMEOUT, retries=0) as dev:
        dev.info()
        with pytest.raises(CsdformerError, match="no answer within"):
            dev.infer(images[0], art.delay)
        dev.retries = 2
        cls, logits, _ = dev.infer(images[1], art.delay)
        cls2, logits2, _ = dev.infer(images[2], art.delay)
    assert np.array_equal(logits, gold[1]) and np.array_equal(logits2, gold[2])
    assert dev.stats["late"] == 1


def test_random_faults(art, images, gold):
    """A seeded mix of every fault on 30 requests: each answer right, or (retries exhausted) a clear
    error naming the device; never a wrong answer."""
    rng = random.Random(16)
    timeout = TIMEOUT / 2
    kinds = [lambda f: [f], lambda f: flip_bit(f, rng.randrange(8 * len(f))),
             lambda f: truncate(f, rng.randrange(1, len(f))), lambda f: late(f, 1.2 * timeout),
             lambda f: garbage(f, bytes(rng.randrange(256) for _ in range(rng.randrange(1, 30)))),
             lambda f: [f[:5], 0.02, f[5:]]]  # a pause inside the answer, shorter than the gap timeout
    fault = lambda k, f: kinds[rng.randrange(len(kinds))](f) if k else [f]  # noqa: E731
    right = errors = 0
    with PtyDevice(device_model(art), fault=fault) as pty, Device(pty.port, timeout=timeout, retries=2) as dev:
        dev.info()
        for i in range(30):
            try:
                _, logits, _ = dev.infer(images[i % len(images)], art.delay)
            except CsdformerError as e:
                assert str(e).startswith(f"device {pty.port}: ") and "\n" not in str(e)
                errors += 1
                continue
            assert np.array_equal(logits, gold[i % len(images)]), i
            right += 1
    assert right + errors == 30 and right >= 20


def test_vanished_device_keeps_the_results(art, images, gold):
    fault = lambda k, f: [VANISH] if k == 4 else [f]  # noqa: E731
    with PtyDevice(device_model(art), fault=fault) as pty, Device(pty.port, timeout=TIMEOUT) as dev:
        dev.info()
        with pytest.raises(RunStopped, match=r"image 4 of 8: device .*the port failed .*unplugged") as e:
            run_images(dev, images[:8], art.delay, progress=False)
    _check(e.value.answers, gold)
    assert len(e.value.answers.logits) == 3


def test_csdformer_run_over_a_pty(art, capsys):
    """The command itself on a pty: --check passes on a faulty but recoverable device; a device that
    vanishes: the results so far are printed, then one error line, exit status 2."""
    with PtyDevice(device_model(art), fault=FAULTS["bit_flips"]) as pty:
        rc = main(["run", "digits", "--port", pty.port, "--images", "6", "--check", "--timeout", str(TIMEOUT)])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "over 6 images" in out and "logits equal for 6/6" in out and "retries" in out

    fault = lambda k, f: [VANISH] if k == 3 else [f]  # noqa: E731
    with PtyDevice(device_model(art), fault=fault) as pty:
        rc = main(["run", "digits", "--port", pty.port, "--images", "6", "--check", "--timeout", str(TIMEOUT)])
    out, err = capsys.readouterr()
    assert rc == 2 and "over 2 images" in out and "logits equal for 2/2" in out
    assert err.count("\n") == 1 and err.startswith("csdformer: error: run stopped after 2 of 6 images")
    assert "the port failed" in err


def test_rtl_soc_behind_a_pty(tmp_path):
    """The RTL SoC (UART + link + the digits accelerator with its model in an on-chip ROM,
    :class:`csdformer.sim.testbed.Testbed`) in Verilator behind a pty (bench:
    ``sim/benches/link_pty.py``), driven by the runtime through pyserial: INFO (the model id read
    from the core's port once its model is loaded) and images, each answered with the golden
    model's class and logits."""
    import os
    import threading
    import time

    from csdformer.hw.flash_image import parse_header
    from csdformer.hw.link import LinkSoC
    from csdformer.hw.program import compile_program
    from csdformer.sim.benchlib import runner
    from csdformer.sim.testbed import Testbed
    from csdformer.sim.verify import reference_result
    from csdformer.firmware.runtime import to_wire

    art = load(resolve_artifact("digits"))
    program = compile_program(art, 8, keep_spikes=False)
    core = Testbed(program)
    soc = LinkSoC(core, divisor=8, timeout=4 * 80)
    meta = {"divisor": 8, "port_file": str(tmp_path / "port"), "done_file": str(tmp_path / "done"), "wall_s": 900}
    out = {}

    def bench():
        try:
            out["res"] = runner.run_bench(soc, "link_pty_digits", "csdformer.sim.benches.link_pty",
                                          data={"none": np.zeros(1)}, meta=meta, tag="pty")
        except BaseException as e:  # noqa: BLE001 - reported below
            out["error"] = e

    t = threading.Thread(target=bench, daemon=True)
    t.start()
    try:
        t0 = time.monotonic()
        while not os.path.exists(meta["port_file"]):  # the Verilator build, then the bench's pty
            assert t.is_alive() and time.monotonic() - t0 < 900, f"the bench did not start: {out}"
            time.sleep(0.2)
        port = (tmp_path / "port").read_text()
        x, _ = load_dataset("digits", "test")
        want_id = parse_header(core.flash_image).model_id
        with Device(port, timeout=30, retries=1) as dev:
            info = dev.info()
            for _ in range(20):  # 0 until the core has loaded its model from the ROM
                if info.model_id:
                    break
                time.sleep(0.5)
                info = dev.info()
            assert info == P.Info(64, 10, art.T, 8, want_id)
            got = [dev.infer(img, d) for img, d in zip(x[:3], (art.delay, 0, art.T - 1))]
    finally:
        (tmp_path / "done").touch()
        t.join(timeout=300)
    assert "error" not in out, out.get("error")
    assert out["res"].passed, out["res"].summary()
    for (cls, logits, cycles), img, d in zip(got, x[:3], (art.delay, 0, art.T - 1)):
        ref = reference_result(program, to_wire(img), d)
        assert cls == ref.cls and logits.tolist() == list(ref.logits) and cycles > 0
