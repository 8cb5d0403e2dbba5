"""Avro values in the Confluent wire format, with and without Faust.

Wire format of every value: magic byte 0, the writer schema id as a 4-byte big-endian
unsigned int, then the schemaless Avro body (fastavro). Decoding looks the writer schema up
by id in the schema registry (cached) and resolves it against the local reader schema
(schemas/<Name>.avsc), so a reader keeps working when a writer adds a field with a default.

    data = encode(record, schema_id)           # plain helpers, no Faust
    record = decode(data, registry)
    names = register_codecs(registry, topics)  # Faust: value_serializer=names[topic]

Anything that does not decode (wrong magic byte, unknown id, truncated or trailing bytes,
a body that does not match its schema) raises workers.errors.SchemaError.
"""

from __future__ import annotations

import io
import json
import struct
import threading
from collections.abc import Mapping
from functools import cache, lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import to_parsing_canonical_form
from faust.serializers import codecs as faust_codecs

from streams.topics import DeadLetter, Topics, value_subject
from workers.errors import ConfigError, SchemaError
from workers.records import RECORD_TYPES, Record

MAGIC = 0
HEADER = struct.Struct(">BI")
SCHEMA_FILES = resources.files("schemas")  # package data: found in a wheel install too
SCHEMA_DIR = Path(str(SCHEMA_FILES))

#: every record type that travels over Kafka, by schema name
STREAM_RECORD_TYPES: dict[str, type[Record]] = {**RECORD_TYPES, DeadLetter.schema_name: DeadLetter}


class SchemaSource(Protocol):
    """What decoding needs from a registry (SchemaRegistry, or a dict-backed fake)."""

    def get_schema(self, schema_id: int) -> str: ...


class SchemaRegistrar(SchemaSource, Protocol):
    def register(self, subject: str, schema: dict[str, Any] | str) -> int: ...

    def lookup(self, subject: str, schema: dict[str, Any] | str) -> int | None: ...


# -- local schemas ------------------------------------------------------------------------------

@cache
def _schema_json(name: str) -> str:
    res = SCHEMA_FILES / f"{name}.avsc"
    try:
        return res.read_text()
    except FileNotFoundError as e:
        raise SchemaError(f"no schema {name}.avsc in the schemas package ({SCHEMA_FILES})") from e


def load_schema(name: str) -> dict[str, Any]:
    """The parsed JSON of schemas/<name>.avsc (a fresh copy)."""
    return json.loads(_schema_json(name))


def schema_names() -> list[str]:
    return sorted(p.name[: -len(".avsc")] for p in SCHEMA_FILES.iterdir() if p.name.endswith(".avsc"))


@cache
def reader_schema(name: str) -> dict[str, Any]:
    """fastavro-parsed local schema `name` (parsed once)."""
    return parse_schema(load_schema(name))


@lru_cache(maxsize=256)
def _writer(text: str) -> tuple[Any, str, str]:
    """(parsed schema, short record name, canonical form) of a registry schema text."""
    try:
        parsed = parse_schema(json.loads(text))
    except Exception as e:
        raise SchemaError(f"registry schema is not valid Avro: {e}; schema: {text[:200]}") from e
    if not isinstance(parsed, dict) or parsed.get("type") != "record":
        raise SchemaError(f"registry schema is not an Avro record: {text[:200]}")
    return parsed, parsed["name"].rsplit(".", 1)[-1], to_parsing_canonical_form(parsed)


@cache
def _reader_canonical(name: str) -> str:
    return to_parsing_canonical_form(reader_schema(name))


def record_type(name: str) -> type[Record]:
    try:
        return STREAM_RECORD_TYPES[name]
    except KeyError as e:
        raise SchemaError(f"no record type for schema {name!r}") from e


# -- wire format -----------------------------------------------------------------------------

def encode(record: Record, schema_id: int) -> bytes:
    """Confluent wire-format bytes of `record`, written with its local schema as `schema_id`."""
    if not 0 <= schema_id <= 0xFFFFFFFF:
        raise SchemaError(f"schema id {schema_id} does not fit the wire format")
    name = record.schema_name
    if not name:
        raise SchemaError(f"{type(record).__name__} has no schema_name")
    buf = io.BytesIO()
    buf.write(HEADER.pack(MAGIC, schema_id))
    try:
        schemaless_writer(buf, reader_schema(name), record.to_dict(), strict=True)
    except SchemaError:
        raise
    except Exception as e:
        raise SchemaError(f"{name} does not match schemas/{name}.avsc: {type(e).__name__}: {e}") from e
    return buf.getvalue()


def schema_id_of(data: bytes) -> int:
    """The writer schema id in a wire-format value (checks the header only)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise SchemaError(f"expected bytes, got {type(data).__name__}")
    if len(data) < HEADER.size:
        raise SchemaError(f"value too short for the Avro wire format: {len(data)} bytes, need at least 5")
    magic, schema_id = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise SchemaError(f"not Confluent Avro wire format: magic byte is {magic:#04x}, expected 0x00")
    return schema_id


def decode(data: bytes, registry: SchemaSource, *, expect: str | None = None) -> Record:
    """The record in wire-format `data`; the writer schema comes from `registry` by id.

    `expect` (a schema name) rejects values written with another record schema; without it the
    record type is the writer schema's record name.
    """
    schema_id = schema_id_of(data)
    try:
        text = registry.get_schema(schema_id)
    except SchemaError:
        raise
    except LookupError as e:  # dict-backed registries
        raise SchemaError(f"schema id {schema_id} is unknown to the registry") from e
    if isinstance(text, Mapping):
        text = json.dumps(text)
    writer, writer_name, writer_canonical = _writer(text)
    name = expect or writer_name
    if writer_name != name:
        raise SchemaError(f"value written as {writer_name} (schema id {schema_id}), expected {name}")
    cls = record_type(name)
    # Same schema on both sides (the usual case): no resolution needed.
    reader = None if writer_canonical == _reader_canonical(name) else reader_schema(name)
    buf = io.BytesIO(data)
    buf.seek(HEADER.size)
    try:
        fields = schemaless_reader(buf, writer, reader)
    except Exception as e:
        raise SchemaError(
            f"corrupt or truncated {name} body (schema id {schema_id}, {len(data)} bytes): "
            f"{type(e).__name__}: {e}") from e
    if buf.tell() != len(data):
        raise SchemaError(f"{len(data) - buf.tell()} trailing bytes after the {name} body "
                          f"(schema id {schema_id})")
    try:
        return cls.from_dict(fields)
    except (KeyError, TypeError, ValueError) as e:
        raise SchemaError(f"{name} (schema id {schema_id}) does not fit {cls.__name__}: {e}") from e


# -- Faust ---------------------------------------------------------------------------------------

class AvroCodec(faust_codecs.Codec):
    """Faust codec for one topic: Record <-> Confluent wire-format Avro.

    Encoding writes the local schemas/<schema_name>.avsc under the id it has in the registry
    (subject `<topic>-value`), registering it first when `auto_register` (else it must exist).
    Decoding accepts any registered writer schema of that record and resolves it.
    The id is looked up once; call `writer_id()` before the event loop runs (register_codecs
    does) so no blocking HTTP happens inside an agent.
    """

    def __init__(self, children: tuple[Any, ...] | None = None, *, schema_name: str,
                 registry: SchemaRegistrar, subject: str, schema_id: int | None = None,
                 auto_register: bool = True, **kwargs: Any) -> None:
        super().__init__(children, schema_name=schema_name, registry=registry, subject=subject,
                         schema_id=schema_id, auto_register=auto_register, **kwargs)
        self.schema_name = schema_name
        self.record_type = record_type(schema_name)
        self.registry = registry
        self.subject = subject
        self.auto_register = auto_register
        self._schema_id = schema_id
        self._lock = threading.Lock()

    def writer_id(self) -> int:
        """The registry id of the local schema under this codec's subject."""
        if self._schema_id is None:
            with self._lock:
                if self._schema_id is None:
                    schema = load_schema(self.schema_name)
                    if self.auto_register:
                        self._schema_id = self.registry.register(self.subject, schema)
                    else:
                        found = self.registry.lookup(self.subject, schema)
                        if found is None:
                            raise SchemaError(f"schemas/{self.schema_name}.avsc is not registered under "
                                              f"{self.subject} (and auto_register is off)")
                        self._schema_id = found
                    self.kwargs["schema_id"] = self._schema_id  # clones reuse it
        return self._schema_id

    def _dumps(self, obj: Any) -> bytes:
        if isinstance(obj, Mapping):
            obj = self.record_type.from_dict(obj)
        if not isinstance(obj, self.record_type):
            raise SchemaError(f"codec for {self.subject} encodes {self.schema_name}, "
                              f"got {type(obj).__name__}")
        return encode(obj, self.writer_id())

    def _loads(self, s: bytes) -> Record:
        return decode(s, self.registry, expect=self.schema_name)


def codec_name(topic: str) -> str:
    """Name under which register_codecs registers the codec of `topic` with Faust."""
    return f"avro:{topic}"


def register_codecs(registry: SchemaRegistrar, topics: Topics, *, auto_register: bool = True,
                    eager: bool = True, compatibility: str | None = "BACKWARD") -> dict[str, str]:
    """Register one AvroCodec per topic with Faust; returns topic -> codec name.

    eager: resolve (and with auto_register, register) every schema id now, so errors show at
    start-up and agents never block on the registry. compatibility: rule set on each subject
    when registering (needs a registry with `register_with_compatibility`).
    """
    names: dict[str, str] = {}
    for topic, schema_name in topics.schemas().items():
        subject = value_subject(topic)
        schema_id = None
        if eager and auto_register and compatibility and hasattr(registry, "register_with_compatibility"):
            schema_id = registry.register_with_compatibility(subject, load_schema(schema_name), compatibility)
        codec = AvroCodec(schema_name=schema_name, registry=registry, subject=subject,
                          schema_id=schema_id, auto_register=auto_register)
        if eager:
            codec.writer_id()
        faust_codecs.register(codec_name(topic), codec)
        names[topic] = codec_name(topic)
    return names


def check_record_types() -> None:
    """Every record type's dataclass fields equal its .avsc fields, in order (ConfigError if not)."""
    import dataclasses

    for name, cls in STREAM_RECORD_TYPES.items():
        avsc = [f["name"] for f in load_schema(name)["fields"]]
        fields = [f.name for f in dataclasses.fields(cls)]
        if avsc != fields:
            raise ConfigError(f"{cls.__name__} fields {fields} differ from schemas/{name}.avsc {avsc}")
