"""A minimal strict-binary Thrift codec written from the protocol spec, independent of our IDL.

Used to check the bytes our clients and sandboxes put on the wire against the field ids in
docs/wire.md, and to craft messages our IDL does not know (unknown fields).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

STOP, BOOL, BYTE, DOUBLE, I16, I32, I64, STRING, STRUCT, MAP, SET, LIST = (
    0, 2, 3, 4, 6, 8, 10, 11, 12, 13, 14, 15)
CALL, REPLY, EXCEPTION = 1, 2, 3
VERSION_1 = 0x80010000

# A decoded struct: field id -> (type, value). Lists/sets decode to (element type, [values]),
# maps to (key type, value type, [(key, value)]), strings to bytes, structs to dicts.
Fields = dict[int, tuple[int, Any]]


@dataclass(frozen=True)
class Message:
    type: int
    name: str
    seqid: int
    body: Fields


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, size: int) -> bytes:
        if self.pos + size > len(self.data):
            raise ValueError("truncated message")
        chunk = self.data[self.pos:self.pos + size]
        self.pos += size
        return chunk

    def unpack(self, fmt: str) -> Any:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def value(self, ttype: int) -> Any:
        if ttype in (BOOL, BYTE):
            return self.unpack(">b")
        if ttype == I16:
            return self.unpack(">h")
        if ttype == I32:
            return self.unpack(">i")
        if ttype == I64:
            return self.unpack(">q")
        if ttype == DOUBLE:
            return self.unpack(">d")
        if ttype == STRING:
            return self.take(self.unpack(">i"))
        if ttype == STRUCT:
            return self.fields()
        if ttype in (LIST, SET):
            item_type, size = self.unpack(">b"), self.unpack(">i")
            return item_type, [self.value(item_type) for _ in range(size)]
        if ttype == MAP:
            key_type, value_type, size = self.unpack(">b"), self.unpack(">b"), self.unpack(">i")
            return key_type, value_type, [(self.value(key_type), self.value(value_type))
                                          for _ in range(size)]
        raise ValueError(f"unknown type {ttype}")

    def fields(self) -> Fields:
        fields: Fields = {}
        while True:
            ttype = self.unpack(">b")
            if ttype == STOP:
                return fields
            field_id = self.unpack(">h")
            fields[field_id] = (ttype, self.value(ttype))


def decode_message(data: bytes) -> Message:
    reader = _Reader(data)
    head = reader.unpack(">I")
    if head & 0xFFFF0000 != VERSION_1:
        raise ValueError(f"not a strict binary message header: {head:#x}")
    name = reader.take(reader.unpack(">i")).decode()
    seqid = reader.unpack(">i")
    body = reader.fields()
    if reader.pos != len(data):
        raise ValueError("trailing bytes after the message")
    return Message(head & 0xFF, name, seqid, body)


def field_types(fields: Fields) -> dict[int, int]:
    return {field_id: ttype for field_id, (ttype, _) in fields.items()}


# --- encoding -------------------------------------------------------------------------------


def i32(value: int) -> bytes:
    return struct.pack(">i", value)


def i64(value: int) -> bytes:
    return struct.pack(">q", value)


def string(value: str | bytes) -> bytes:
    raw = value.encode() if isinstance(value, str) else value
    return i32(len(raw)) + raw


def field(field_id: int, ttype: int, payload: bytes) -> bytes:
    return struct.pack(">bh", ttype, field_id) + payload


def struct_(*fields: bytes) -> bytes:
    return b"".join(fields) + bytes([STOP])


def list_(item_type: int, items: list[bytes]) -> bytes:
    return struct.pack(">bi", item_type, len(items)) + b"".join(items)


def map_(key_type: int, value_type: int, pairs: list[tuple[bytes, bytes]]) -> bytes:
    return struct.pack(">bbi", key_type, value_type, len(pairs)) + b"".join(
        k + v for k, v in pairs)


def message(message_type: int, name: str, seqid: int, body: bytes) -> bytes:
    return struct.pack(">I", VERSION_1 | message_type) + string(name) + i32(seqid) + body
