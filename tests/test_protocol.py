"""The link protocol (firmware/protocol.py): CRC, frames, messages, the resynchronizing decoder."""

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from csdformer import CsdformerError
from csdformer.firmware import protocol as P


def test_crc16_check_values():
    assert P.crc16(b"123456789") == 0x29B1  # the CRC-16/CCITT-FALSE check value
    assert P.crc16(b"") == 0xFFFF
    assert P.crc16(b"\x00") == 0xE1F0
    assert P.crc16(b"56789", P.crc16(b"1234")) == 0x29B1  # running CRC


def test_frame_layout():
    f = P.encode(P.MsgType.INFER, b"\x03\x10\x00")
    assert f[:4] == bytes([0xA5, 0x01, 0x03, 0x00]) and f[4:7] == b"\x03\x10\x00"
    assert struct.unpack("<H", f[7:])[0] == P.crc16(f[1:7])
    assert P.info_request() == P.encode(P.MsgType.INFO) and len(P.info_request()) == 6
    assert P.infer_request(2, [1, 2, 3]) == P.encode(P.MsgType.INFER, b"\x02\x01\x02\x03")


def test_codes_are_distinct_and_not_sync():
    codes = [int(t) for t in P.MsgType]
    assert len(set(codes)) == len(codes) and P.SYNC not in codes
    assert P.HOST_TYPES.isdisjoint(P.DEVICE_TYPES)


@pytest.mark.parametrize("payload", [b"", b"\xa5", bytes(range(256)), b"\xa5" * 1000])
def test_round_trip_whole_and_byte_by_byte(payload):
    f = P.encode(0x81, payload)
    assert P.Decoder().feed(f) == [P.Frame(0x81, payload)]
    d = P.Decoder()
    got = [fr for b in f for fr in d.feed(bytes([b]))]
    assert got == [P.Frame(0x81, payload)] and d.pending == 0


def test_messages_round_trip():
    info = P.Info(n_pixels=3072, num_classes=100, T=8, lanes=16, model_id=0xDEADBEEF)
    assert len(info.pack()) == P.INFO_SIZE and P.Info.unpack(info.pack()) == info
    r = P.Result(cls=7, cycles=123456789, logits=(-1, 2**31 - 1, -(2**31), 0))
    assert len(r.pack()) == P.result_size(4) and P.Result.unpack(r.pack(), 4) == r
    assert P.Result.unpack(r.pack()) == r


def test_message_errors():
    with pytest.raises(P.ProtocolError, match="RESULT"):
        P.Result.unpack(b"\x00" * 8)
    with pytest.raises(P.ProtocolError, match="RESULT"):
        P.Result.unpack(P.Result(0, 0, (1, 2)).pack(), 3)
    with pytest.raises(P.ProtocolError, match="INFO"):
        P.Info.unpack(b"\x00" * 8)
    with pytest.raises(P.ProtocolError, match="Info"):
        P.Info(70000, 1, 1, 1, 0).pack()
    with pytest.raises(CsdformerError, match="pixels"):
        P.infer_request(0, [256])
    with pytest.raises(P.ProtocolError, match="payload"):
        P.encode(1, bytes(70000))


def test_resync_after_garbage_and_bad_crc():
    a, b = P.encode(0x81, b"first"), P.encode(0x82, b"second")
    bad = bytearray(P.encode(0x81, b"broken"))
    bad[-2] ^= 1
    d = P.Decoder(max_payload=100)  # the false sync 0xA5 0x13 then announces 0x81A5 bytes
    got = d.feed(b"\x00\xff\xa5\x13" + bytes(bad) + a + b"zz" + b)
    assert got == [P.Frame(0x81, b"first"), P.Frame(0x82, b"second")]
    assert d.stats["crc_errors"] >= 1 and d.stats["skipped"] > 0


def test_truncated_frame_followed_by_a_new_one():
    """The new frame's bytes complete the truncated one, whose CRC then fails: backtracking
    finds the new frame inside it."""
    full = P.encode(0x81, b"0123456789")
    d = P.Decoder()
    assert d.feed(full[:7]) == []
    assert d.feed(full) == [P.Frame(0x81, b"0123456789")]
    assert d.stats["crc_errors"] == 1


def test_truncated_frame_times_out():
    d = P.Decoder(timeout=0.5)
    frame = P.encode(0x82, b"abc")
    assert d.feed(frame[:5], now=0.0) == []
    assert d.expire(now=0.4) == [] and d.pending == 5
    assert d.feed(frame, now=1.0) == [P.Frame(0x82, b"abc")]
    assert d.stats["timeouts"] == 1


def test_stalled_false_sync_releases_the_frame_behind_it():
    """A false sync announcing a long payload holds the real frame until the timeout."""
    real = P.encode(0x8F, b"\x02")
    d = P.Decoder(timeout=1.0)
    assert d.feed(b"\xa5\x81\xff\x00" + real, now=0.0) == []
    assert d.expire(now=2.0) == [P.Frame(0x8F, b"\x02")] and d.pending == 0
    d = P.Decoder()
    assert d.feed(b"\xa5\x81\xff\x00" + real) == []
    assert d.flush() == [P.Frame(0x8F, b"\x02")]


def test_max_payload_and_types_reject_false_syncs_at_once():
    real = P.encode(0x81, b"x")
    d = P.Decoder(max_payload=P.MAX_DEVICE_PAYLOAD, types=P.DEVICE_TYPES)
    assert d.feed(b"\xa5\x81\xff\xff" + real) == [P.Frame(0x81, b"x")]  # oversized
    assert d.feed(b"\xa5\x01" + real) == [P.Frame(0x81, b"x")]  # a host type
    assert d.stats["bad_headers"] == 2


frames_st = st.lists(st.tuples(st.integers(0, 255), st.binary(max_size=40)), max_size=6)


@settings(max_examples=200, deadline=None)
@given(frames=frames_st, soup=st.lists(st.binary(max_size=30), min_size=7, max_size=7),
       cuts=st.lists(st.integers(1, 50), max_size=20))
def test_decoder_finds_every_frame_in_byte_soup(frames, soup, cuts):
    stream = b"".join(g + P.encode(t, p) for g, (t, p) in zip(soup, frames)) + soup[-1]
    d = P.Decoder()
    got, pos = [], 0
    for c in cuts:  # random chunking
        got += d.feed(stream[pos:pos + c])
        pos += c
    got += d.feed(stream[pos:]) + d.flush()
    want = [P.Frame(t, p) for t, p in frames]
    it = iter(got)
    assert all(w in it for w in want), (want, got)  # a subsequence, in order
    if not any(P.SYNC in g for g in soup):
        assert got == want


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=300))
def test_decoder_never_invents_a_bad_frame(data):
    d = P.Decoder()
    for f in d.feed(data) + d.flush():
        assert P.encode(f.type, f.payload) in data
