"""The host runtime (firmware/runtime.py, firmware/cli_run.py) against a Python device model.

The fake device is :class:`DeviceModel` answering with the golden runner's results for the shipped
``digits`` artifact, behind :class:`LoopbackSerial` (a pyserial-like object).
"""

import argparse
import time

import numpy as np
import pytest

from csdformer import CsdformerError
from csdformer.artifact import load, resolve_artifact
from csdformer.datasets import load as load_dataset
from csdformer.firmware import protocol as P
from csdformer.firmware import runtime
from csdformer.firmware.cli_run import add_run_parser, run_command
from csdformer.firmware.device_model import DeviceModel, LoopbackSerial
from csdformer.firmware.runtime import Device, run_images, to_wire
from csdformer.sim.runner import run

MODEL_ID = 0x0D161755


@pytest.fixture(scope="module")
def art():
    return load(resolve_artifact("digits"))


@pytest.fixture(scope="module")
def images():
    x, _ = load_dataset("digits", "test")
    return x[:12]


def golden_model(art, *, skew=0):
    """The device model of ``art``: golden logits (``+ skew`` on class 0), cycles = 1000 + delay."""
    C, H, W = art.input.shape

    def compute(pixels, delay):
        img = np.frombuffer(pixels, dtype=np.uint8).reshape(H, W, C).transpose(2, 0, 1)
        logits = run(art, img[None], delay=delay).logits[0].copy()
        logits[0] += skew
        return P.Result(int(np.argmax(logits)), 1000 + delay, tuple(int(v) for v in logits))

    return DeviceModel(P.Info(C * H * W, art.num_classes, art.T, 1, MODEL_ID), compute)


def test_info_and_infer_match_golden(art, images):
    dev = Device(LoopbackSerial(golden_model(art)), timeout=0.5)
    info = dev.info()
    assert info == P.Info(64, 10, 4, 1, MODEL_ID)
    for delay in (art.T - 1, 0):
        gold = run(art, images[:4], delay=delay)
        for img, want in zip(images[:4], gold.logits):
            cls, logits, cycles = dev.infer(img, delay)
            assert np.array_equal(logits, want) and cls == int(np.argmax(want)) and cycles == 1000 + delay


def test_to_wire_is_y_x_channel():
    img = np.arange(2 * 3 * 4).reshape(2, 3, 4)  # (C, H, W)
    assert to_wire(img)[:4] == bytes([0, 12, 1, 13])


def test_run_images(art, images):
    dev = Device(LoopbackSerial(golden_model(art)), timeout=0.5)
    ans = run_images(dev, images, 3, progress=False)
    gold = run(art, images, delay=3)
    assert np.array_equal(ans.logits, gold.logits) and np.array_equal(ans.predictions, gold.predictions)
    assert ans.cycles.tolist() == [1003] * len(images)


def test_no_answer_times_out(art, images):
    dev = Device(LoopbackSerial(golden_model(art), tamper=lambda f: b""), timeout=0.2)
    t0 = time.monotonic()
    with pytest.raises(CsdformerError, match="no answer within 0.2 s"):
        dev.info()
    assert 0.15 < time.monotonic() - t0 < 2


def test_bad_crc_is_a_bad_frame(art):
    def flip(frame):
        return frame[:-1] + bytes([frame[-1] ^ 0x10])

    dev = Device(LoopbackSerial(golden_model(art), tamper=flip), timeout=0.2)
    with pytest.raises(CsdformerError, match=r"bad frame: .*1 CRC errors"):
        dev.info()


def test_answer_behind_stray_bytes_is_found(art, images):
    dev = Device(LoopbackSerial(golden_model(art), tamper=lambda f: b"\x00\xa5\x81" + f), timeout=0.5)
    assert dev.infer(images[0], 3)[0] == int(run(art, images[:1]).predictions[0])


def test_error_answers_and_local_checks(art, images):
    dev = Device(LoopbackSerial(golden_model(art)), timeout=0.5)
    with pytest.raises(CsdformerError, match="ERROR BAD_LENGTH to a INFER"):
        dev.request(P.MsgType.INFER, b"\x00\x01", want=P.MsgType.RESULT)
    with pytest.raises(CsdformerError, match="ERROR BAD_DELAY"):
        dev.request(P.MsgType.INFER, bytes([4]) + bytes(64), want=P.MsgType.RESULT)
    with pytest.raises(CsdformerError, match="ERROR UNKNOWN_TYPE"):
        dev.request(P.MsgType.RESULT, b"", want=P.MsgType.RESULT)
    with pytest.raises(CsdformerError, match="delay"):
        dev.infer(images[0], 4)
    with pytest.raises(CsdformerError, match="64 pixels"):
        dev.infer(np.zeros((1, 4, 4), np.uint8), 0)


def test_bad_port_is_a_clear_error():
    with pytest.raises(CsdformerError, match="cannot open"):
        Device("/nonexistent/ttyCSD0", 115200)


def _args(*argv):
    p = argparse.ArgumentParser()
    add_run_parser(p.add_subparsers())
    return p.parse_args(["run", "digits", "--port", "fake", *argv])


@pytest.mark.parametrize("skew,rc", [(0, 0), (1000, 1)])
def test_run_command_check(monkeypatch, capsys, art, skew, rc):
    monkeypatch.setattr(runtime, "open_serial", lambda port, baud: LoopbackSerial(golden_model(art, skew=skew)))
    assert run_command(_args("--images", "6", "--seed", "1", "--delay", "2", "--check")) == rc
    out = capsys.readouterr().out
    assert "model id 0x0d161755" in out and "over 6 images" in out
    assert ("logits equal for 6/6" in out) == (rc == 0)


def test_run_command_refuses_another_model(monkeypatch, art):
    model = golden_model(art)
    model.info = P.Info(784, 10, 4, 1, 0)
    monkeypatch.setattr(runtime, "open_serial", lambda port, baud: LoopbackSerial(model))
    with pytest.raises(CsdformerError, match="784 pixels"):
        run_command(_args("--images", "2"))
