"""Thrift messages as woody carries them: strict binary protocol, IDLs from `clients/idl`.

Shared by the woody client and the sandbox woody server.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import thriftpy2
from thriftpy2.protocol.cybin import ProtocolError as CyProtocolError
from thriftpy2.protocol.cybin import TCyBinaryProtocol
from thriftpy2.protocol.exc import TProtocolException
from thriftpy2.transport import TTransportException
from thriftpy2.transport.buffered import TCyBufferedTransport
from thriftpy2.transport.memory import TCyMemoryBuffer, TMemoryBuffer

IDL_DIR = Path(__file__).parent / "idl"


def load_idl(name: str) -> ModuleType:
    """The Thrift module of `clients/idl/<name>.thrift` (thriftpy2 caches it per name)."""
    return thriftpy2.load(
        str(IDL_DIR / f"{name}.thrift"), module_name=f"{name}_thrift", include_dirs=[str(IDL_DIR)]
    )


# thriftpy2's Cython protocol: about ten times cheaper than the pure-Python one, and the same
# bytes. Decoding reads through the buffered transport, which raises at the end of the body;
# the bare Cython memory buffer would hand out whatever lies past a truncated body instead.


def encode_message(name: str, message_type: int, seqid: int, payload: Any) -> bytes:
    """One strict (versioned) binary Thrift message."""
    buffer = TCyMemoryBuffer()
    protocol = TCyBinaryProtocol(buffer, strict_write=True)
    protocol.write_message_begin(name, message_type, seqid)
    protocol.write_struct(payload)
    protocol.write_message_end()
    return buffer.getvalue()


@dataclass(frozen=True)
class DecodedMessage:
    name: str
    message_type: int
    seqid: int
    protocol: TCyBinaryProtocol  # positioned at the message's struct


# What a malformed or truncated Thrift body raises while being decoded. Besides the Thrift
# errors: a bad header is the Cython protocol's own ProtocolError, a negative length a
# SystemError, a length past anything the buffer could hold a MemoryError (it refuses to grow).
DECODE_ERRORS = (TProtocolException, TTransportException, CyProtocolError, struct.error,
                 UnicodeDecodeError, EOFError, ValueError, TypeError, RecursionError,
                 SystemError, MemoryError)


def open_message(body: bytes) -> DecodedMessage:
    """Read a message header (strict only); the caller then reads the struct."""
    transport = TCyBufferedTransport(TMemoryBuffer(body))
    protocol = TCyBinaryProtocol(transport, strict_read=True, decode_response=True)
    name, message_type, seqid = protocol.read_message_begin()
    return DecodedMessage(name, message_type, seqid, protocol)
