"""MQTT client construction for the bridge (and tests), with two throughput fixes over paho.

paho-mqtt is written for generality, not for tens of thousands of messages a second: it reads
each packet with three or more `recv` calls, runs `select` once per packet, builds an
`MQTTMessage` and parses MQTT 5 properties for every PUBLISH, matches the topic against the
callback table, and wakes its network thread once per acknowledgement. Measured here, that was
most of the bridge's CPU. `BridgeClient` keeps paho for everything (connection, session,
keepalive, reconnect, subscribe) and takes over only the hot path:
- reads the TCP socket in large chunks and serves paho's small reads from that buffer (paho
  polls `pending()` on its socket before it blocks in select, as it does for TLS);
- reads every packet that is already buffered before going back to select, and hands a packet
  that is complete in the buffer straight to paho's dispatcher (no byte-by-byte header reads);
- decodes QoS 0/1 PUBLISH packets itself (topic, packet id, payload; MQTT 5 properties are
  skipped — the bridge uses none and sets no topic-alias maximum, so the broker sends no
  aliases) and calls `fast_handler(topic, payload, mid, qos)` directly;
- acknowledges a whole batch as one write (`ack_many`): PUBACKs are 4 bytes each and are simply
  concatenated, which is what paho would send one by one.
These rely on paho internals (`_create_socket`, `_in_packet`, `_packet_read`, `_packet_handle`,
`_msgtime_mutex`, `_packet_queue`,
pinned paho-mqtt version); tests exercise them against a real broker, and each falls back to
paho's own path when the internal it needs is missing.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.exception import MalformedPacket
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gridmon.config import Settings

_PUBACK = 0x40
_U16 = struct.Struct("!H")
_READ_CHUNK = 256 * 1024


class _BufferedSocket:
    """A non-blocking TCP socket whose small reads are served from one large read."""

    def __init__(self, sock: Any):
        self._sock = sock
        self._buf = b""
        self._pos = 0

    def recv(self, bufsize: int) -> bytes:
        if self._pos >= len(self._buf):
            data = self._sock.recv(_READ_CHUNK)  # BlockingIOError propagates to paho
            if not data:
                return b""
            self._buf, self._pos = data, 0
        end = self._pos + bufsize
        chunk = self._buf[self._pos : end]
        self._pos = min(end, len(self._buf))
        return chunk

    def pending(self) -> int:
        inner = self._sock.pending() if hasattr(self._sock, "pending") else 0
        return len(self._buf) - self._pos + inner

    def next_packet(self) -> tuple[int, bytes] | None:
        """(command byte, body) of the next packet if it is entirely buffered, else None."""
        buf, pos = self._buf, self._pos
        end = len(buf)
        if end - pos < 2:
            return None
        length, shift, cursor = 0, 0, pos + 1
        while True:
            if cursor >= end or shift > 21:
                return None  # length not fully buffered (or malformed: paho's own path decides)
            byte = buf[cursor]
            cursor += 1
            length += (byte & 0x7F) << shift
            if not byte & 0x80:
                break
            shift += 7
        if cursor + length > end:
            return None
        self._pos = cursor + length
        return buf[pos], buf[cursor : self._pos]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


FastHandler = Callable[[str, bytes | bytearray, int, int], None]
_MAX_PACKETS_PER_READ = 2000


def _varint(data: bytes | bytearray, pos: int) -> tuple[int, int]:
    """MQTT variable byte integer at pos → (value, position after it)."""
    value, shift = 0, 0
    while True:
        byte = data[pos]
        pos += 1
        value += (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 21:
            raise ValueError("malformed variable byte integer")


class BridgeClient(mqtt.Client):
    """paho Client with buffered reads, a direct PUBLISH path and batched acknowledgements."""

    fast_handler: FastHandler | None = None

    def _packet_read(self) -> MQTTErrorCode:
        # A packet already complete in the read buffer is handed to paho's dispatcher directly;
        # anything partial goes through paho's incremental reader (which reads the same buffer).
        sock = self._sock
        if type(sock) is _BufferedSocket and self._in_packet["command"] == 0:
            packet = sock.next_packet()
            if packet is not None:
                command, body = packet
                incoming = self._in_packet
                incoming["command"] = command
                incoming["have_remaining"] = 1
                incoming["remaining_length"] = len(body)
                incoming["packet"] = bytearray(body)
                incoming["to_process"] = 0
                incoming["pos"] = 0
                try:
                    rc = self._packet_handle()
                except MalformedPacket:
                    rc = MQTTErrorCode.MQTT_ERR_PROTOCOL
                incoming["command"] = 0
                incoming["have_remaining"] = 0
                incoming["remaining_count"] = []
                incoming["remaining_mult"] = 1
                incoming["remaining_length"] = 0
                incoming["packet"] = bytearray(b"")
                with self._msgtime_mutex:
                    self._last_bytes_received = time.monotonic()
                return rc
        return super()._packet_read()

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        # paho reads one packet per select(); read everything already buffered instead.
        if self._sock is None:
            return MQTTErrorCode.MQTT_ERR_NO_CONN
        for _ in range(_MAX_PACKETS_PER_READ):
            if self._sock is None:
                return MQTTErrorCode.MQTT_ERR_NO_CONN
            rc = self._packet_read()
            if rc > 0:
                return self._loop_rc_handle(rc)
            if rc == MQTTErrorCode.MQTT_ERR_AGAIN:
                return MQTTErrorCode.MQTT_ERR_SUCCESS
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _handle_publish(self) -> MQTTErrorCode:
        handler = self.fast_handler
        header = self._in_packet["command"]
        qos = (header & 0x06) >> 1
        if handler is None or qos == 2:
            return super()._handle_publish()
        packet = self._in_packet["packet"]
        try:
            (topic_len,) = _U16.unpack_from(packet, 0)
            pos = 2 + topic_len
            topic = packet[2:pos].decode("utf-8")
            mid = 0
            if qos:
                (mid,) = _U16.unpack_from(packet, pos)
                pos += 2
            if self._protocol == mqtt.MQTTv5:
                props_len, pos = _varint(packet, pos)
                pos += props_len
        except (struct.error, IndexError, UnicodeDecodeError, ValueError):
            return MQTTErrorCode.MQTT_ERR_PROTOCOL
        if not topic:
            return MQTTErrorCode.MQTT_ERR_PROTOCOL
        handler(topic, packet[pos:], mid, qos)
        if qos == 1 and not self._manual_ack:
            return self._send_puback(mid)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _create_socket(self) -> Any:
        sock = super()._create_socket()
        if isinstance(sock, socket.socket):  # plain TCP/TLS; websockets keep paho's own wrapper
            return _BufferedSocket(sock)
        return sock

    def ack_many(self, mids: list[tuple[int, int]]) -> None:
        """Acknowledge (mid, qos) pairs; QoS 1 ones go out as one write."""
        qos1 = [mid for mid, qos in mids if qos == 1]
        for mid, qos in mids:
            if qos == 2:
                self.ack(mid, qos)
        if not qos1:
            return
        queue = getattr(self, "_packet_queue", None)
        if queue is None or not self._manual_ack:
            for mid in qos1:
                self.ack(mid, 1)
            return
        packet = b"".join(struct.pack("!BBH", _PUBACK, 2, mid) for mid in qos1)
        queue(_PUBACK, packet, 0, 0)


def make_client(settings: Settings, client_id: str, *, manual_ack: bool = False) -> BridgeClient:
    """A paho 2.x client with the configured protocol and credentials (not yet connected)."""
    protocol = mqtt.MQTTv5 if settings.mqtt_protocol == 5 else mqtt.MQTTv311
    kwargs: dict[str, Any] = {}
    if protocol == mqtt.MQTTv311:
        kwargs["clean_session"] = False
    client = BridgeClient(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=protocol,
        manual_ack=manual_ack,
        **kwargs,
    )
    if settings.mqtt_username:
        client.username_pw_set(settings.mqtt_username, settings.mqtt_password)
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    return client


def session_properties(settings: Settings) -> Properties | None:
    """MQTT 5 CONNECT properties: keep the session while away, allow many messages in flight,
    refuse oversized packets."""
    if settings.mqtt_protocol != 5:
        return None
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = settings.mqtt_session_expiry_s
    props.ReceiveMaximum = settings.mqtt_receive_maximum
    # The broker must not send us larger packets (it drops them instead): a hostile 100 MB
    # PUBLISH never reaches the bridge's memory. Payloads between GRIDMON_MAX_PAYLOAD_BYTES and
    # this still arrive and are dead-lettered as too_large (their prefix, size and hash).
    props.MaximumPacketSize = settings.mqtt_max_packet_bytes
    return props
