"""One column of many rows as a PostgreSQL array in binary, packed in one go.

A batch inserts many rows as `INSERT ... SELECT FROM unnest(one array per column)`
(service.store.pipeline). psycopg's list dumper inspects every element to choose the array's
type and dumps them one by one: a confirm's 44 arrays took a quarter of its client CPU. The
column's type is known, so each array is packed here with `struct` and handed to psycopg as
bytes that its dumper passes through unchanged (`Packed`, registered below).

The binary array format (PostgreSQL's array_send): dimensions, a has-nulls flag, the
element type's OID, then per dimension its length and lower bound; then each element as its
length in bytes (-1: NULL) and its binary value.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.adapt import Dumper
from psycopg.pq import Format
from sqlalchemy import BigInteger, Boolean, Integer, LargeBinary, String, types

# element type OIDs (pg_type) and the array types they make
BOOL, BYTEA, INT8, TEXT, TIMESTAMPTZ = 16, 17, 20, 25, 1184
ARRAY_OF = {BOOL: 1000, BYTEA: 1001, INT8: 1016, TEXT: 1009, TIMESTAMPTZ: 1185}

_HEADER = struct.Struct("!iiIii")  # one dimension, has nulls, element OID, length, from 1
_EMPTY = struct.Struct("!iiI")  # no dimension
_LENGTH = struct.Struct("!i")
_NULL = _LENGTH.pack(-1)
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

Pack = Callable[[Sequence[Any]], "Packed"]


class Packed(bytes):
    """An array already in PostgreSQL's binary format; `oid` is its array type (bytes take no
    slots: it is in the instance's dict)."""

    oid: int


def _packed(element_oid: int, values: Sequence[Any], elements: bytes, has_null: bool) -> Packed:
    if not values:
        data = Packed(_EMPTY.pack(0, 0, element_oid))
    else:
        data = Packed(_HEADER.pack(1, int(has_null), element_oid, len(values), 1) + elements)
    data.oid = ARRAY_OF[element_oid]
    return data


def _fixed(element_oid: int, code: str, convert: Callable[[Any], Any] | None = None) -> Pack:
    """Elements of one fixed size (`code` as in struct: q int8, ? bool)."""
    size = struct.calcsize("!" + code)

    def pack(values: Sequence[Any]) -> Packed:
        if None in values:
            parts = [
                _NULL if v is None else struct.pack("!i" + code, size, convert(v) if convert else v)
                for v in values
            ]
            return _packed(element_oid, values, b"".join(parts), True)
        given = [convert(v) for v in values] if convert else list(values)
        interleaved = [x for v in given for x in (size, v)]
        elements = struct.pack("!" + ("i" + code) * len(given), *interleaved)
        return _packed(element_oid, values, elements, False)

    return pack


def _variable(element_oid: int, encode: Callable[[Any], bytes]) -> Pack:
    """Elements of their own length (text as UTF-8, bytea as it is)."""

    def pack(values: Sequence[Any]) -> Packed:
        parts = []
        has_null = False
        for v in values:
            if v is None:
                parts.append(_NULL)
                has_null = True
            else:
                data = encode(v)
                parts.append(_LENGTH.pack(len(data)) + data)
        return _packed(element_oid, values, b"".join(parts), has_null)

    return pack


def _microseconds(value: datetime) -> int:
    return (value - _PG_EPOCH) // _MICROSECOND


def _utf8(value: str) -> bytes:
    return value.encode()


_PACKERS: list[tuple[type[Any], Pack]] = [
    (Boolean, _fixed(BOOL, "?")),
    (BigInteger, _fixed(INT8, "q")),  # (before Integer: BigInteger is one)
    (Integer, _fixed(INT8, "q")),
    (String, _variable(TEXT, _utf8)),  # (enums by name are Strings)
    (LargeBinary, _variable(BYTEA, bytes)),
    (types.DateTime, _fixed(TIMESTAMPTZ, "q", _microseconds)),
]


def packer_for(column_type: Any) -> Pack | None:
    """How to pack a column of this SQLAlchemy type, once its bind processor ran (None: left
    to psycopg). Only time zone aware datetimes are packed: the store keeps them in UTC."""
    base = column_type.impl if isinstance(column_type, types.TypeDecorator) else column_type
    if isinstance(base, types.DateTime) and not base.timezone:
        return None
    for kind, pack in _PACKERS:
        if isinstance(base, kind):
            return pack
    return None


class _PackedDumper(Dumper):
    """Passes a packed array through, with its own type."""

    format = Format.BINARY

    def dump(self, obj: Any) -> bytes:
        return obj  # type: ignore[no-any-return]

    def get_key(self, obj: Any, format: Any) -> Any:
        return (Packed, obj.oid)

    def upgrade(self, obj: Any, format: Any) -> Dumper:
        dumper = _PackedDumper(Packed)
        dumper.oid = obj.oid
        return dumper


psycopg.adapters.register_dumper(Packed, _PackedDumper)
