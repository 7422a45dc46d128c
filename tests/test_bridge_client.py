"""The bridge's buffered MQTT reader: complete packets come out whole, partial ones wait."""

from __future__ import annotations

import socket

import pytest

from gridmon.bridge.mqtt import _BufferedSocket, _varint


def packet(command: int, body: bytes) -> bytes:
    length, out = len(body), bytearray()
    while True:
        byte, length = length & 0x7F, length >> 7
        out.append(byte | (0x80 if length else 0))
        if not length:
            return bytes([command, *out]) + body


@pytest.fixture()
def pair():
    a, b = socket.socketpair()
    b.setblocking(False)
    yield a, _BufferedSocket(b)
    a.close()
    b.close()


def test_complete_packets_are_returned_whole(pair) -> None:
    writer, reader = pair
    big = b"x" * 300  # two-byte remaining length
    writer.sendall(packet(0x32, b"abc") + packet(0x32, big))
    assert reader.recv(1) == bytes([0x32])  # paho's path: the first packet byte by byte
    assert reader.recv(1) == bytes([3])
    assert reader.recv(3) == b"abc"
    assert reader.next_packet() == (0x32, big)
    assert reader.next_packet() is None
    assert reader.pending() == 0


def test_partial_packet_waits_for_the_rest(pair) -> None:
    writer, reader = pair
    whole = packet(0x32, b"y" * 200)
    writer.sendall(whole[:50])
    reader.recv(1)  # pull what arrived into the buffer, as paho's first read does
    reader._pos = 0  # look at the buffer from the packet start again
    assert reader.next_packet() is None  # body incomplete: paho's incremental reader takes over
    writer.sendall(whole[50:])
    rest = reader.recv(len(whole))  # the buffered part first …
    assert whole.startswith(rest)
    tail = reader.recv(len(whole))  # … then the socket
    assert rest + tail == whole


def test_varint_round_trip() -> None:
    for n in (0, 1, 127, 128, 16383, 16384, 2_097_151, 268_435_455):
        data = bytearray()
        m = n
        while True:
            byte, m = m & 0x7F, m >> 7
            data.append(byte | (0x80 if m else 0))
            if not m:
                break
        assert _varint(bytes(data), 0) == (n, len(data))
