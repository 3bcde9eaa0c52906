"""Finding where a Java serialization stream ends, without running or keeping anything from it.

A JCEKS secret-key entry is a serialized `SealedObject` whose length the keystore does not store,
so reading the entries after it needs the stream's end. This walks the grammar of the Java Object
Serialization Specification (chapter 6) far enough to skip one top-level object: class
descriptions (remembered by handle, so later objects of the same class can be sized), field
values, arrays, strings, enums, block data and annotations. Nothing is instantiated; depth, handle
count and every length are bounded by the input.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from .model import ParseError

MAGIC = b"\xac\xed\x00\x05"
BASE_HANDLE = 0x7E0000
MAX_DEPTH = 32
MAX_HANDLES = 10_000

TC_NULL, TC_REFERENCE, TC_CLASSDESC, TC_OBJECT, TC_STRING, TC_ARRAY, TC_CLASS = range(0x70, 0x77)
TC_BLOCKDATA, TC_ENDBLOCKDATA, TC_RESET, TC_BLOCKDATALONG, TC_EXCEPTION, TC_LONGSTRING = range(0x77, 0x7D)
TC_PROXYCLASSDESC, TC_ENUM = 0x7D, 0x7E
SC_WRITE_METHOD, SC_SERIALIZABLE, SC_EXTERNALIZABLE, SC_BLOCK_DATA = 0x01, 0x02, 0x04, 0x08
_PRIMITIVE_BYTES = {"B": 1, "C": 2, "D": 8, "F": 4, "I": 4, "J": 8, "S": 2, "Z": 1}


@dataclass
class _ClassDesc:
    name: str
    flags: int = 0
    fields: list[str] = field(default_factory=list)  # type codes: a primitive letter, or "L" / "["
    parent: _ClassDesc | None = None


class _Stream:
    def __init__(self, data: bytes, pos: int) -> None:
        self.data = data
        self.pos = pos
        self.handles: list[object] = []

    def take(self, size: int) -> bytes:
        if size < 0 or size > len(self.data) - self.pos:
            raise ParseError("truncated keystore")
        start = self.pos
        self.pos += size
        return self.data[start:self.pos]

    def u1(self) -> int:
        return self.take(1)[0]

    def u2(self) -> int:
        return int(struct.unpack(">H", self.take(2))[0])

    def i4(self) -> int:
        return int(struct.unpack(">i", self.take(4))[0])

    def utf(self) -> str:
        return self.take(self.u2()).decode("utf-8", "replace")

    def new_handle(self, value: object) -> None:
        if len(self.handles) >= MAX_HANDLES:
            raise ParseError("invalid serialized object")
        self.handles.append(value)

    def handle(self) -> object:
        index = self.i4() - BASE_HANDLE
        if not 0 <= index < len(self.handles):
            raise ParseError("invalid serialized object")
        return self.handles[index]

    # -- the grammar ------------------------------------------------------------------

    def content(self, depth: int) -> object:
        if depth > MAX_DEPTH:
            raise ParseError("serialized object nested too deeply")
        tag = self.u1()
        if tag == TC_NULL:
            return None
        if tag == TC_REFERENCE:
            return self.handle()
        if tag in (TC_CLASSDESC, TC_PROXYCLASSDESC):
            self.pos -= 1
            return self.class_desc(depth)
        if tag == TC_OBJECT:
            desc = self.class_desc(depth + 1)
            self.new_handle(object())
            self.class_data(desc, depth + 1)
            return None
        if tag in (TC_STRING, TC_LONGSTRING):
            size = self.u2() if tag == TC_STRING else int(struct.unpack(">q", self.take(8))[0])
            text = self.take(size).decode("utf-8", "replace")
            self.new_handle(text)
            return text
        if tag == TC_ARRAY:
            desc = self.class_desc(depth + 1)
            self.new_handle(object())
            self.array(desc, depth + 1)
            return None
        if tag == TC_ENUM:
            self.class_desc(depth + 1)
            self.new_handle(object())
            self.content(depth + 1)
            return None
        if tag == TC_CLASS:
            self.class_desc(depth + 1)
            self.new_handle(object())
            return None
        if tag == TC_BLOCKDATA:
            self.take(self.u1())
            return None
        if tag == TC_BLOCKDATALONG:
            self.take(self.i4())
            return None
        raise ParseError("invalid serialized object")  # TC_RESET, TC_EXCEPTION, unknown

    def class_desc(self, depth: int) -> _ClassDesc | None:
        if depth > MAX_DEPTH:
            raise ParseError("serialized object nested too deeply")
        tag = self.u1()
        if tag == TC_NULL:
            return None
        if tag == TC_REFERENCE:
            desc = self.handle()
            if not isinstance(desc, _ClassDesc):
                raise ParseError("invalid serialized object")
            return desc
        if tag == TC_PROXYCLASSDESC:
            desc = _ClassDesc("proxy", SC_SERIALIZABLE)
            self.new_handle(desc)
            for _ in range(self.i4()):
                self.utf()
            self.annotation(depth + 1)
            desc.parent = self.class_desc(depth + 1)
            return desc
        if tag != TC_CLASSDESC:
            raise ParseError("invalid serialized object")
        desc = _ClassDesc(self.utf())
        self.take(8)  # serialVersionUID
        self.new_handle(desc)
        desc.flags = self.u1()
        for _ in range(self.u2()):
            code = chr(self.u1())
            self.utf()
            if code in ("L", "["):
                self.content(depth + 1)  # the field's class name, a string or a reference to one
            elif code not in _PRIMITIVE_BYTES:
                raise ParseError("invalid serialized object")
            desc.fields.append(code)
        self.annotation(depth + 1)
        desc.parent = self.class_desc(depth + 1)
        return desc

    def annotation(self, depth: int) -> None:
        while self.data[self.pos:self.pos + 1] != bytes([TC_ENDBLOCKDATA]):
            self.content(depth)
        self.pos += 1

    def class_data(self, desc: _ClassDesc | None, depth: int) -> None:
        chain: list[_ClassDesc] = []
        while desc is not None:
            if len(chain) > MAX_DEPTH:
                raise ParseError("serialized object nested too deeply")
            chain.append(desc)
            desc = desc.parent
        for current in reversed(chain):
            if current.flags & SC_EXTERNALIZABLE:
                if not current.flags & SC_BLOCK_DATA:
                    raise ParseError("unsupported serialized object")
                self.annotation(depth)
                continue
            for code in current.fields:
                if code in _PRIMITIVE_BYTES:
                    self.take(_PRIMITIVE_BYTES[code])
                else:
                    self.content(depth)
            if current.flags & SC_WRITE_METHOD:
                self.annotation(depth)

    def array(self, desc: _ClassDesc | None, depth: int) -> None:
        size = self.i4()
        element = desc.name[1:2] if desc is not None and desc.name.startswith("[") else ""
        if element in _PRIMITIVE_BYTES:
            self.take(size * _PRIMITIVE_BYTES[element])
            return
        if size < 0 or size > len(self.data) - self.pos:
            raise ParseError("invalid serialized object")
        for _ in range(size):
            self.content(depth)


def end_of_object(data: bytes, pos: int) -> int:
    """Where the serialization stream (magic, version, one object) starting at `pos` ends."""
    if data[pos:pos + 4] != MAGIC:
        raise ParseError("invalid serialized object")
    stream = _Stream(data, pos + 4)
    stream.content(0)
    return stream.pos
