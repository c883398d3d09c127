"""The host runtime (firmware/runtime.py, firmware/cli_run.py) against a Python device model.

The fake device is :class:`DeviceModel` answering with the golden runner's results for the shipped
``digits`` artifact, behind :class:`LoopbackSerial` (a pyserial-like object).
"""

import argparse
import dataclasses
import sys
import time

import numpy as np
import pytest

from csdformer import CsdformerError
from csdformer.artifact import load, resolve_artifact
from csdformer.datasets import load as load_dataset
from csdformer.firmware import protocol as P
from csdformer.firmware import runtime
from csdformer.firmware.cli_run import add_run_parser, expected_model_id, run_command
from csdformer.firmware.device_model import DeviceModel, LoopbackSerial
from csdformer.firmware.runtime import Device, RunStopped, run_images, to_wire
from csdformer.sim.runner import run


@pytest.fixture(scope="module")
def art():
    return load(resolve_artifact("digits"))


@pytest.fixture(scope="module")
def model_id(art):
    return expected_model_id(art, 1)


@pytest.fixture(scope="module")
def images():
    x, _ = load_dataset("digits", "test")
    return x[:12]


def golden_model(art, *, skew=0, model_id=None):
    """The device model of ``art`` (1 lane): golden logits (``+ skew`` on class 0), cycles = 1000 + delay."""
    C, H, W = art.input.shape

    def compute(pixels, delay):
        img = np.frombuffer(pixels, dtype=np.uint8).reshape(H, W, C).transpose(2, 0, 1)
        logits = run(art, img[None], delay=delay).logits[0].copy()
        logits[0] += skew
        return P.Result(int(np.argmax(logits)), 1000 + delay, tuple(int(v) for v in logits))

    mid = expected_model_id(art, 1) if model_id is None else model_id
    return DeviceModel(P.Info(C * H * W, art.num_classes, art.T, 1, mid), compute)


def test_info_and_infer_match_golden(art, images, model_id):
    dev = Device(LoopbackSerial(golden_model(art)), timeout=0.5)
    info = dev.info()
    assert info == P.Info(64, 10, 4, 1, model_id)
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
    dev = Device(LoopbackSerial(golden_model(art), tamper=lambda f: b""), timeout=0.2, retries=0)
    t0 = time.monotonic()
    with pytest.raises(CsdformerError, match=r"no answer within 0.2 s .*\(1 attempt\)$"):
        dev.info()
    assert 0.15 < time.monotonic() - t0 < 2


def test_retries_with_backoff(art):
    """No answer: 1 + retries attempts, each waiting the timeout, with backoff 0.05, 0.1 s between."""
    port = LoopbackSerial(golden_model(art), tamper=lambda f: b"")
    dev = Device(port, timeout=0.1, retries=2, backoff=0.05)
    t0 = time.monotonic()
    with pytest.raises(CsdformerError, match=r"no answer within 0.1 s .*\(3 attempts\)$"):
        dev.info()
    assert 0.45 < time.monotonic() - t0 < 3
    frames = P.Decoder().feed(bytes(port.written))
    assert [f.seq for f in frames] == [0, 1, 2] and dev.stats["retries"] == 2


def test_bad_crc_is_a_bad_frame(art):
    def flip(frame):
        return frame[:-1] + bytes([frame[-1] ^ 0x10])

    dev = Device(LoopbackSerial(golden_model(art), tamper=flip), timeout=0.2, retries=1)
    t0 = time.monotonic()
    with pytest.raises(CsdformerError, match=r"bad frame: .*2 CRC errors.*\(2 attempts\)$"):
        dev.info()
    assert time.monotonic() - t0 < 0.15  # a bad CRC is retried at once (after the backoff), not timed out


def test_lost_and_corrupted_answers_are_retried(art, images):
    """The 1st answer lost, the 2nd corrupted: the 3rd attempt's answer is taken, and it is right."""
    k = iter(range(100))

    def tamper(frame):
        i = next(k)
        return b"" if i == 0 else frame[:9] + bytes([frame[9] ^ 4]) + frame[10:] if i == 1 else frame

    dev = Device(LoopbackSerial(golden_model(art), tamper=tamper), timeout=0.1, retries=3)
    dev._info = golden_model(art).info
    cls, logits, _ = dev.infer(images[0], 3)
    assert np.array_equal(logits, run(art, images[:1], delay=3).logits[0])
    assert dev.stats["retries"] == 2


class LateLoopback(LoopbackSerial):
    """The answer to request ``late`` arrives only after the next request was sent (behind its
    stale-input reset), ahead of that request's own answer."""

    def __init__(self, model, late: int):
        super().__init__(model)
        self.late, self.n, self.held = late, 0, b""

    def write(self, data):
        self.written += data
        for frame in self.model.feed(bytes(data)):
            if self.n == self.late:
                self.held = frame
            else:
                self._rx += self.held + frame
                self.held = b""
            self.n += 1
        return len(data)


def test_late_answer_is_never_taken_for_the_next_image(art, images):
    dev = Device(LateLoopback(golden_model(art), late=1), timeout=0.1, retries=0)
    dev.info()
    with pytest.raises(CsdformerError, match="no answer"):
        dev.infer(images[0], 3)
    gold = run(art, images[:2], delay=3).logits
    cls, logits, _ = dev.infer(images[1], 3)  # image 0's answer arrives first: dropped
    assert np.array_equal(logits, gold[1]) and dev.stats["late"] == 1


def test_class_out_of_range_and_vanished_port(art, images):
    model = golden_model(art)
    compute = model.compute
    model.compute = lambda px, d: dataclasses.replace(compute(px, d), cls=200)
    dev = Device(LoopbackSerial(model), timeout=0.1)
    with pytest.raises(CsdformerError, match=r"class 200, but the model has 10 classes \(0..9\)$"):
        dev.infer(images[0], 0)

    class Unplugged(LoopbackSerial):
        def read(self, size=1):
            raise OSError(5, "Input/output error")

    dev = Device(Unplugged(golden_model(art)), timeout=0.1)
    with pytest.raises(CsdformerError, match="the port failed .*unplugged"):
        dev.info()


@pytest.mark.skipif(sys.platform == "win32", reason="termios is POSIX")
def test_port_that_vanishes_while_draining(art):
    """pyserial's POSIX flush is tcdrain, whose failure is a termios.error (not an OSError): a pty
    closed under it must still be the one-line 'port failed' error (seen in CI on a vanishing pty)."""
    import termios

    class DrainFails(LoopbackSerial):
        def flush(self):
            raise termios.error(5, "Input/output error")

    dev = Device(DrainFails(golden_model(art)), timeout=0.1)
    with pytest.raises(CsdformerError, match=r"the port failed \(Input/output error, errno 5\); was the device unplugged"):
        dev.info()
    dev.close()


def test_run_images_keeps_what_it_has(art, images):
    k = iter(range(100))
    dev = Device(LoopbackSerial(golden_model(art), tamper=lambda f: f if next(k) < 4 else b""), timeout=0.05,
                 retries=1, backoff=0)
    dev.info()
    with pytest.raises(RunStopped, match="image 4 of 12: .*no answer") as e:
        run_images(dev, images, 3, progress=False)
    assert np.array_equal(e.value.answers.logits, run(art, images[:3], delay=3).logits)


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
    assert f"model id 0x{expected_model_id(art, 1):08x}, model id checked" in out and "over 6 images" in out
    assert ("logits equal for 6/6" in out) == (rc == 0)


def test_run_command_refuses_another_model(monkeypatch, art):
    model = golden_model(art)
    model.info = P.Info(784, 10, 4, 1, 0)
    monkeypatch.setattr(runtime, "open_serial", lambda port, baud: LoopbackSerial(model))
    with pytest.raises(CsdformerError, match="784 pixels"):
        run_command(_args("--images", "2"))


def test_run_command_refuses_another_model_id(monkeypatch, art):
    model = golden_model(art, model_id=0x12345678)
    monkeypatch.setattr(runtime, "open_serial", lambda port, baud: LoopbackSerial(model))
    with pytest.raises(CsdformerError, match=r"reports model id 0x12345678, digits with 1 lanes is 0x"):
        run_command(_args("--images", "2"))
    assert run_command(_args("--images", "2", "--model-id", "0x12345678")) == 0
    model.info = dataclasses.replace(model.info, model_id=0)
    t0 = time.monotonic()
    with pytest.raises(CsdformerError, match=r"reports model id 0x00000000, .*no model is loaded yet.*--load-wait"):
        run_command(_args("--images", "2", "--load-wait", "0.3"))
    assert 0.3 <= time.monotonic() - t0 < 3  # it asked again for 0.3 s, not the default 3
    with pytest.raises(CsdformerError, match=r"^--load-wait: must be >= 0, got -1$"):
        run_command(_args("--images", "2", "--load-wait", "-1"))


class _Loading(DeviceModel):
    """A device that reports no model (id 0) for its first ``k`` INFO answers: one still reading its
    model after reset (the ULX3S copying it into its SDRAM)."""

    def __init__(self, model, k):
        super().__init__(model.info, model.compute)
        self.loaded, self.k, self.asked = model.info, k, 0
        self.info = dataclasses.replace(model.info, model_id=0)

    def _answer(self, mtype, seq, payload):
        out = super()._answer(mtype, seq, payload)
        if mtype == P.MsgType.INFO:
            self.asked += 1
            if self.asked >= self.k:
                self.info = self.loaded
        return out


def test_run_command_waits_while_the_device_loads_its_model(monkeypatch, capsys, art):
    """INFO asked again while the device reports no model: the run starts once it has one (after
    four answers of 0 here), the model id checked."""
    model = _Loading(golden_model(art), 4)
    monkeypatch.setattr(runtime, "open_serial", lambda port, baud: LoopbackSerial(model))
    assert run_command(_args("--images", "2", "--check")) == 0
    assert model.asked == 5
    assert "model id checked" in capsys.readouterr().out


def test_run_command_reports_then_fails(monkeypatch, capsys, art):
    k = iter(range(100))
    model = golden_model(art)
    port = LoopbackSerial(model, tamper=lambda f: f if next(k) < 4 else b"")  # INFO + 3 answers
    monkeypatch.setattr(runtime, "open_serial", lambda port_, baud: port)
    with pytest.raises(CsdformerError, match=r"^run stopped after 3 of 6 images \(their results are above\): "
                                             r"image 4 of 6: device .*: no answer within 0.05 s"):
        run_command(_args("--images", "6", "--check", "--timeout", "0.05", "--retries", "1"))
    out = capsys.readouterr().out
    assert "over 3 images" in out and "logits equal for 3/3" in out
