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
    f = P.encode(P.MsgType.INFER, b"\x03\x10\x00", seq=0x42)
    assert f[:5] == bytes([0xA5, 0x01, 0x42, 0x03, 0x00]) and f[5:8] == b"\x03\x10\x00"
    assert struct.unpack("<H", f[8:])[0] == P.crc16(f[1:8])
    assert P.info_request(7) == P.encode(P.MsgType.INFO, b"", 7) and len(P.info_request()) == 7
    assert P.infer_request(2, [1, 2, 3], 9) == P.encode(P.MsgType.INFER, b"\x02\x01\x02\x03", 9)
    assert P.VERSION == 2 and P.HEADER_SIZE == 5


def test_docs_examples():
    """The hex examples of docs/protocol.md."""
    assert P.info_request(0).hex(" ") == "a5 02 00 00 00 a8 69"
    assert P.infer_request(3, [0, 1, 2, 3], 0x10).hex(" ") == "a5 01 10 05 00 03 00 01 02 03 a1 38"
    r = P.Result(1, 100, (-2, 7)).pack()
    assert P.encode(P.MsgType.RESULT, r, 0x10).hex(" ") == ("a5 81 10 0d 00 01 64 00 00 00 fe ff ff ff "
                                                          "07 00 00 00 80 c4")
    assert P.encode(P.MsgType.ERROR, b"\x03", 0x11).hex(" ") == "a5 8f 11 01 00 03 65 3c"
    info = P.Info(64, 10, 4, 2, 0x5EED1E55)
    assert P.encode(P.MsgType.INFO_REPLY, info.pack(), 0).hex(" ") == ("a5 82 00 0a 00 02 40 00 0a 04 02 55 1e ed "
                                                                        "5e 62 69")


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
    assert info.pack()[0] == P.VERSION and P.Info.unpack(b"\x01" + info.pack()[1:]).version == 1
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
    with pytest.raises(P.ProtocolError, match="sync"):
        P.encode(P.SYNC)
    with pytest.raises(P.ProtocolError, match="seq"):
        P.encode(1, b"", 256)


def test_resync_after_garbage_and_bad_crc():
    a, b = P.encode(0x81, b"first"), P.encode(0x82, b"second")
    bad = bytearray(P.encode(0x81, b"broken"))
    bad[-2] ^= 1
    d = P.Decoder(max_payload=100)  # the false sync 0xA5 0x13 0xA5 then announces 0xXX81 bytes
    got = d.feed(b"\x00\xff\xa5\x13" + bytes(bad) + a + b"zz" + b)
    assert got == [P.Frame(0x81, b"first"), P.Frame(0x82, b"second")]
    assert d.stats["crc_errors"] >= 1 and d.stats["skipped"] > 0


def test_truncated_frame_followed_by_a_new_one():
    """The new frame's bytes complete the truncated one, whose CRC then fails: backtracking
    finds the new frame inside it."""
    full = P.encode(0x81, b"0123456789", 3)
    d = P.Decoder()
    assert d.feed(full[:7]) == []
    assert d.feed(full) == [P.Frame(0x81, b"0123456789", 3)]
    assert d.stats["crc_errors"] == 1


def _ends_in_sync(mtype=0x81):
    """Frames whose last byte (the CRC's high byte) is 0xA5."""
    for seq in range(256):
        f = P.encode(mtype, bytes([1, seq, 2, 3, 4, 5, 6, 7, 8]), seq)
        if f[-1] == P.SYNC:
            yield f


@pytest.mark.parametrize("decoder", [P.Decoder, P.host_decoder])
def test_frame_cut_before_a_last_sync_byte(decoder):
    """The next frame's sync byte completes a frame cut just before its last byte 0xA5: both
    frames are found (the completed one is the one sent: its missing byte was 0xA5)."""
    nxt = P.encode(P.MsgType.ERROR, b"\x01", 9)
    frames = list(_ends_in_sync())
    assert frames
    for f in frames:
        d = decoder()
        want = [P.Frame(f[1], f[5:-2], f[2]), P.Frame(nxt[1], nxt[5:-2], nxt[2])]
        assert d.feed(f[:-1] + nxt) == want  # cut
        assert d.feed(f + nxt) == want and d.pending == 0  # whole: the last 0xA5 is not a sync
        assert d.feed(f) == want[:1] and d.feed(nxt) == want[1:]  # whole, chunked at the 0xA5


@pytest.mark.parametrize("n", [20_000, 80_000])
def test_false_sync_flood_is_linear(n):
    """A flood of false syncs announcing long payloads: every candidate's CRC is an O(1) check, so
    time grows linearly (at most 5 µs a byte, about 100 times faster than the 115200-baud line)."""
    import time

    flood = bytes([P.SYNC, 0x81, 0x00, 0x00, 0x04]) * (n // 5)  # each announces 1024 bytes
    real = P.encode(0x81, b"x", 1)
    d = P.Decoder(max_payload=P.MAX_DEVICE_PAYLOAD)
    t0 = time.perf_counter()
    got = d.feed(flood + real) + d.flush()
    assert time.perf_counter() - t0 < 5e-6 * n + 0.05
    assert got == [P.Frame(0x81, b"x", 1)]


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
    assert d.feed(b"\xa5\x81\x00\xff\x00" + real, now=0.0) == []
    assert d.expire(now=2.0) == [P.Frame(0x8F, b"\x02")] and d.pending == 0
    d = P.Decoder()
    assert d.feed(b"\xa5\x81\x00\xff\x00" + real) == []
    assert d.flush() == [P.Frame(0x8F, b"\x02")]


def test_max_payload_and_types_reject_false_syncs_at_once():
    real = P.encode(0x81, bytes(9))
    d = P.host_decoder()
    assert d.feed(b"\xa5\x81\x00\xff\xff" + real) == [P.Frame(0x81, bytes(9))]  # oversized
    assert d.feed(b"\xa5\x01" + real) == [P.Frame(0x81, bytes(9))]  # a host type
    assert d.feed(b"\xa5\x8f\x00\x02\x00" + real) == [P.Frame(0x81, bytes(9))]  # no ERROR is 2 bytes
    assert d.feed(b"\xa5\x81\x00\x08\x00" + real) == [P.Frame(0x81, bytes(9))]  # no RESULT is 8 bytes
    assert d.stats["bad_headers"] == 4


frames_st = st.lists(st.tuples(st.integers(0, 255).filter(lambda t: t != P.SYNC), st.binary(max_size=40),
                               st.integers(0, 255)), max_size=6)


@settings(max_examples=200, deadline=None)
@given(frames=frames_st, soup=st.lists(st.binary(max_size=30), min_size=7, max_size=7),
       cuts=st.lists(st.integers(1, 50), max_size=20))
def test_decoder_finds_every_frame_in_byte_soup(frames, soup, cuts):
    stream = b"".join(g + P.encode(t, p, q) for g, (t, p, q) in zip(soup, frames)) + soup[-1]
    d = P.Decoder()
    got, pos = [], 0
    for c in cuts:  # random chunking
        got += d.feed(stream[pos:pos + c])
        pos += c
    got += d.feed(stream[pos:]) + d.flush()
    want = [P.Frame(t, p, q) for t, p, q in frames]
    it = iter(got)
    assert all(w in it for w in want), (want, got)  # a subsequence, in order
    if not any(P.SYNC in g for g in soup):
        assert got == want


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=300))
def test_decoder_never_invents_a_bad_frame(data):
    d = P.Decoder()
    for f in d.feed(data) + d.flush():
        assert P.encode(f.type, f.payload, f.seq) in data
