"""Avro wire format: exact bytes for every schema, decoding, resolution, bad input, Faust codec."""

from __future__ import annotations

import dataclasses
import json
import types
import typing

import pytest
from fastavro import parse_schema
from faust.serializers import codecs as faust_codecs
from faust.serializers.registry import Registry as FaustRegistry

from streams.codecs import (
    SCHEMA_DIR,
    STREAM_RECORD_TYPES,
    AvroCodec,
    check_record_types,
    codec_name,
    decode,
    encode,
    load_schema,
    register_codecs,
    schema_id_of,
    schema_names,
)
from streams.registry import schema_text
from streams.topics import HOP_RECORDS, DeadLetter, Topics
from workers.errors import SchemaError
from workers.records import (
    AudioChunk,
    DubbedFrame,
    DubbedSpeech,
    Record,
    SessionControl,
    SpeechSegment,
    Transcript,
    Translation,
    VideoFrame,
)


class FakeRegistry:
    """In-memory stand-in for SchemaRegistryClient (same methods the codecs use)."""

    def __init__(self) -> None:
        self.by_id: dict[int, str] = {}
        self.subjects: dict[str, list[int]] = {}
        self.compat: dict[str, str] = {}
        self.next_id = 1

    def add(self, schema_id: int, schema: dict | str) -> None:
        self.by_id[schema_id] = schema_text(schema)

    def register(self, subject: str, schema: dict | str) -> int:
        text = schema_text(schema)
        for i in self.subjects.get(subject, []):
            if self.by_id[i] == text:
                return i
        i = self.next_id
        self.next_id += 1
        self.by_id[i] = text
        self.subjects.setdefault(subject, []).append(i)
        return i

    def register_with_compatibility(self, subject: str, schema: dict | str, level: str = "BACKWARD") -> int:
        self.compat[subject] = level
        return self.register(subject, schema)

    def lookup(self, subject: str, schema: dict | str) -> int | None:
        text = schema_text(schema)
        return next((i for i in self.subjects.get(subject, []) if self.by_id[i] == text), None)

    def get_schema(self, schema_id: int) -> str:
        if schema_id not in self.by_id:
            raise SchemaError(f"schema id {schema_id} is unknown")
        return self.by_id[schema_id]


# One fixed record per schema, its schema id, and the exact wire bytes (hex) it must encode to:
# magic 00, the id as 4 big-endian bytes, then the Avro body (zigzag varints, length-prefixed
# strings/bytes, little-endian doubles/floats, union branch index, array blocks ending in 00).
EXACT: list[tuple[Record, int, str]] = [
    (
        SessionControl(session_id="s1", action="start", target_langs=("es", "fr"), source_lang="en", at=1.5),
        257,
        "00" "00000101" "047331" "0a7374617274" "04" "046573" "046672" "00" "02" "04656e"
        "000000000000f83f",
    ),
    (
        AudioChunk(session_id="s1", seq=3, pts_s=0.25, sample_rate=16000, pcm=b"\x01\x00\xff\x7f",
                   captured_at=2.0, produced_at=2.5),
        514,
        "00" "00000202" "047331" "06" "000000000000d03f" "80fa01" "080100ff7f" "0000000000000040"
        "0000000000000440",
    ),
    (
        VideoFrame(session_id="s1", seq=-1, pts_s=0.5, width=2, height=1, encoding="jpeg", data=b"\xff\xd8",
                   produced_at=3.0),
        771,
        "00" "00000303" "047331" "01" "000000000000e03f" "04" "02" "086a706567" "04ffd8" "0000000000000840",
    ),
    (
        SpeechSegment(session_id="s1", seq=64, start_s=1.0, end_s=2.5, sample_rate=16000, pcm=b"\x00\x01",
                      cut_reason="pause", target_langs=("es",), source_lang=None, speech_end_at=10.0,
                      produced_at=10.25),
        1028,
        "00" "00000404" "047331" "8001" "000000000000f03f" "0000000000000440" "80fa01" "040001"
        "0a7061757365" "02" "046573" "00" "00" "0000000000002440" "0000000000802440" "00" "00",
    ),
    (
        Transcript(session_id="s1", seq=64, start_s=1.0, end_s=2.5, text="hi é", language="en", confidence=0.5,
                   target_langs=("es", "fr"), speech_end_at=10.0, produced_at=11.0),
        1285,
        "00" "00000505" "047331" "8001" "000000000000f03f" "0000000000000440" "0a686920c3a9" "04656e"
        "000000000000e03f" "04" "046573" "046672" "00" "0000000000002440" "0000000000002640" "00" "00",
    ),
    (
        Translation(session_id="s1", seq=64, start_s=1.0, end_s=2.5, text="hola", source_lang="en",
                    target_lang="es", speech_end_at=10.0, produced_at=12.0),
        1542,
        "00" "00000606" "047331" "8001" "000000000000f03f" "0000000000000440" "08686f6c61" "04656e" "046573"
        "0000000000002440" "0000000000002840" "00" "00",
    ),
    (
        DubbedSpeech(session_id="s1", seq=64, start_s=1.0, end_s=2.5, target_lang="es", text="hola",
                     sample_rate=22050, pcm=b"\x10\x00", mouth_rate=25.0, mouth=(0.0, 0.5, 1.0),
                     speech_end_at=10.0, produced_at=13.0, mouth_round=(-1.0,)),
        1799,
        "00" "00000707" "047331" "8001" "000000000000f03f" "0000000000000440" "046573" "08686f6c61" "c4d802"
        "041000" "0000000000003940" "06" "00000000" "0000003f" "0000803f" "00" "0000000000002440"
        "0000000000002a40" "02" "000080bf" "00" "00",
    ),
    (
        DubbedFrame(session_id="s1", seq=64, frame_seq=1000, pts_s=1.04, target_lang="es", width=640, height=360,
                    encoding="jpeg", data=b"\xff\xd8\xff", last_in_segment=True, speech_end_at=10.0,
                    produced_at=14.0),
        2056,
        "00" "00000808" "047331" "8001" "d00f" "a4703d0ad7a3f03f" "046573" "800a" "d005" "086a706567"
        "06ffd8ff" "01" "0000000000002440" "0000000000002c40",
    ),
    (
        DeadLetter(stage="asr", topic="livedub.segments", partition=11, offset=123456789, error="boom",
                   error_type="StageError", retryable=False, original_key=b"s1",
                   original_value=b"\x00\x00\x00\x00\x01", at=15.0),
        2313,
        "00" "00000909" "06617372" "206c6976656475622e7365676d656e7473" "16" "aab4de75" "08626f6f6d"
        "1453746167654572726f72" "00" "02047331" "0a0000000001" "0000000000002e40" "01",
    ),
]


@pytest.fixture
def registry() -> FakeRegistry:
    reg = FakeRegistry()
    for record, schema_id, _ in EXACT:
        reg.add(schema_id, load_schema(record.schema_name))
    return reg


def test_every_schema_has_an_exact_bytes_case() -> None:
    assert sorted(r.schema_name for r, _, _ in EXACT) == schema_names()
    assert set(schema_names()) == set(STREAM_RECORD_TYPES)


@pytest.mark.parametrize(("record", "schema_id", "hexbytes"), EXACT, ids=[r.schema_name for r, _, _ in EXACT])
def test_exact_bytes(record: Record, schema_id: int, hexbytes: str, registry: FakeRegistry) -> None:
    data = encode(record, schema_id)
    assert data.hex() == hexbytes
    assert data[0] == 0 and int.from_bytes(data[1:5], "big") == schema_id == schema_id_of(data)
    assert decode(bytes.fromhex(hexbytes), registry) == record
    assert decode(data, registry, expect=record.schema_name) == record


@pytest.mark.parametrize("name", schema_names())
def test_schema_parses_and_is_named_after_its_file(name: str) -> None:
    raw = json.loads((SCHEMA_DIR / f"{name}.avsc").read_text())
    parsed = parse_schema(raw)
    assert parsed["name"] == f"io.livedub.{name}"
    assert raw["type"] == "record" and raw.get("doc")
    for f in raw["fields"]:
        # a union with null must put null first and default to null (Avro default rules)
        if isinstance(f["type"], list) and "null" in f["type"]:
            assert f["type"][0] == "null" and f.get("default", "missing") is None, f["name"]


_AVRO_PY = {"string": str, "long": int, "int": int, "double": float, "float": float, "bytes": bytes,
            "boolean": bool}


def _py_type(avro: object) -> object:
    if isinstance(avro, list):
        (other,) = [t for t in avro if t != "null"]
        return _py_type(other) | None
    if isinstance(avro, dict) and avro["type"] == "array":
        return tuple[_py_type(avro["items"]), ...]
    if isinstance(avro, dict) and avro["type"] == "record":  # a nested record: its dataclass, field by field
        from workers.records import NESTED

        (cls,) = [c for c in NESTED.values() if c.__name__ == avro["name"]]
        hints = typing.get_type_hints(cls)
        assert [f.name for f in dataclasses.fields(cls)] == [f["name"] for f in avro["fields"]]
        assert all(hints[f["name"]] == _py_type(f["type"]) for f in avro["fields"])
        return cls
    return _AVRO_PY[avro]


@pytest.mark.parametrize("name", sorted(STREAM_RECORD_TYPES))
def test_dataclass_fields_match_avsc(name: str) -> None:
    cls = STREAM_RECORD_TYPES[name]
    assert cls.schema_name == name
    avsc = load_schema(name)["fields"]
    fields = dataclasses.fields(cls)
    assert [f.name for f in fields] == [f["name"] for f in avsc]
    hints = typing.get_type_hints(cls)
    for f in avsc:
        want, got = _py_type(f["type"]), hints[f["name"]]
        if isinstance(want, types.UnionType) or isinstance(got, types.UnionType):
            assert set(typing.get_args(got)) == set(typing.get_args(want)), f["name"]
        else:
            assert got == want, f["name"]
    check_record_types()


def test_every_topic_record_has_a_schema() -> None:
    assert set(HOP_RECORDS.values()) == set(schema_names())


# -- bad bytes ---------------------------------------------------------------------------------

def test_bad_header(registry: FakeRegistry) -> None:
    good = bytes.fromhex(EXACT[0][2])
    with pytest.raises(SchemaError, match="too short"):
        decode(b"", registry)
    with pytest.raises(SchemaError, match="too short"):
        decode(good[:4], registry)
    with pytest.raises(SchemaError, match="magic byte is 0x01"):
        decode(b"\x01" + good[1:], registry)
    with pytest.raises(SchemaError, match="magic byte is 0x7b"):
        decode(b'{"session_id": "s1"}', registry)
    with pytest.raises(SchemaError, match="expected bytes"):
        decode("not bytes", registry)  # type: ignore[arg-type]


def test_unknown_schema_id(registry: FakeRegistry) -> None:
    good = bytes.fromhex(EXACT[0][2])
    with pytest.raises(SchemaError, match="schema id 99 is unknown"):
        decode(good[:1] + (99).to_bytes(4, "big") + good[5:], registry)

    class KeyErrorRegistry:
        def get_schema(self, schema_id: int) -> str:
            raise KeyError(schema_id)

    with pytest.raises(SchemaError, match="schema id 257 is unknown to the registry"):
        decode(good, KeyErrorRegistry())


@pytest.mark.parametrize(("record", "schema_id", "hexbytes"), EXACT, ids=[r.schema_name for r, _, _ in EXACT])
def test_every_truncation_is_an_error(record: Record, schema_id: int, hexbytes: str,
                                      registry: FakeRegistry) -> None:
    data = bytes.fromhex(hexbytes)
    for n in range(len(data)):
        with pytest.raises(SchemaError):
            decode(data[:n], registry)
    with pytest.raises(SchemaError, match="1 trailing bytes"):
        decode(data + b"\x00", registry)


def test_corrupt_body(registry: FakeRegistry) -> None:
    data = bytearray(bytes.fromhex(EXACT[0][2]))
    data[5] = 0x7F  # session_id length -64: negative string length
    with pytest.raises(SchemaError, match="corrupt or truncated SessionControl"):
        decode(bytes(data), registry)


def test_wrong_record_type_for_topic(registry: FakeRegistry) -> None:
    data = bytes.fromhex(EXACT[0][2])  # a SessionControl
    with pytest.raises(SchemaError, match=r"written as SessionControl.*expected AudioChunk"):
        decode(data, registry, expect="AudioChunk")


def test_encode_rejects_values_that_do_not_fit() -> None:
    with pytest.raises(SchemaError, match="SessionControl does not match"):
        encode(SessionControl(session_id="s1", action="start", target_langs=("es",), at="soon"), 1)  # type: ignore[arg-type]
    with pytest.raises(SchemaError, match="does not fit"):
        encode(SessionControl(session_id="s1", action="start", target_langs=("es",), at=1.0), 2**32)


# -- schema resolution ------------------------------------------------------------------------

def test_reader_resolves_newer_writer_with_extra_field() -> None:
    schema = load_schema("Translation")
    schema["fields"].append({"name": "quality", "type": "double", "default": 0.0})
    reg = FakeRegistry()
    reg.add(42, schema)
    newer = {**EXACT[5][0].to_dict(), "quality": 0.9}
    import io

    from fastavro import schemaless_writer

    buf = io.BytesIO()
    buf.write(b"\x00" + (42).to_bytes(4, "big"))
    schemaless_writer(buf, parse_schema(schema), newer)
    assert decode(buf.getvalue(), reg) == EXACT[5][0]


def test_reader_fills_defaults_missing_from_older_writer() -> None:
    schema = load_schema("SessionControl")
    schema["fields"] = [f for f in schema["fields"] if f["name"] != "source_lang"]
    reg = FakeRegistry()
    reg.add(7, schema)
    body = bytes.fromhex("047331" "0a7374617274" "02" "046573" "00" "000000000000f83f")
    rec = decode(b"\x00\x00\x00\x00\x07" + body, reg)
    assert rec == SessionControl(session_id="s1", action="start", target_langs=("es",), source_lang=None, at=1.5)


# -- Faust codec ------------------------------------------------------------------------------

def test_faust_codec_roundtrip_registers_each_topic() -> None:
    reg = FakeRegistry()
    topics = Topics(prefix="unit.")
    names = register_codecs(reg, topics)
    assert set(names) == set(topics.all()) and len(set(names.values())) == len(names)
    assert set(reg.subjects) == {f"{t}-value" for t in topics.all()}
    assert set(reg.compat.values()) == {"BACKWARD"}
    for record, _, _ in EXACT:
        topic = topics.topic_for(record.schema_name)
        data = faust_codecs.dumps(names[topic], record)
        assert schema_id_of(data) == reg.lookup(f"{topic}-value", load_schema(record.schema_name))
        assert faust_codecs.loads(names[topic], data) == record
        # the way a Faust topic with value_serializer=<name> and no value_type decodes
        assert FaustRegistry().loads_value(None, data, serializer=names[topic]) == record
        assert FaustRegistry().dumps_value(None, record, serializer=names[topic]) == data


def test_faust_codec_type_checks_and_lookup_only() -> None:
    reg = FakeRegistry()
    codec = AvroCodec(schema_name="Transcript", registry=reg, subject="x.transcripts-value", auto_register=False)
    with pytest.raises(SchemaError, match=r"not registered under x\.transcripts-value"):
        codec.dumps(EXACT[4][0])
    reg.register("x.transcripts-value", load_schema("Transcript"))
    assert codec.loads(codec.dumps(EXACT[4][0])) == EXACT[4][0]
    with pytest.raises(SchemaError, match="encodes Transcript, got Translation"):
        codec.dumps(EXACT[5][0])
    assert codec.loads(codec.dumps(EXACT[4][0].to_dict())) == EXACT[4][0]  # a plain dict is accepted
    chained = codec | faust_codecs.binary()  # Faust clones codecs when chaining
    assert chained.loads(chained.dumps(EXACT[4][0])) == EXACT[4][0]
    with pytest.raises(SchemaError):
        codec.loads(b"\x00\x00\x00")
    with pytest.raises(SchemaError, match="no record type"):
        AvroCodec(schema_name="Nope", registry=reg, subject="s")
    assert codec_name("livedub.segments") == "avro:livedub.segments"


def test_exact_bytes_of_a_segment_with_its_speaker_and_voice(registry: FakeRegistry) -> None:
    """The nested VoiceProfile record (null in the cases above), written out by hand from the Avro spec."""
    from workers.records import VoiceProfile

    seg = SpeechSegment(session_id="s1", seq=64, start_s=1.0, end_s=2.5, sample_rate=16000, pcm=b"\x00\x01",
                        cut_reason="pause", target_langs=("es",), source_lang=None, speech_end_at=10.0,
                        produced_at=10.25, speaker="S1",
                        voice=VoiceProfile((1.0, -0.5), 100.0, 90.0, 120.0, 500.0, 1500.0, (2.0,)))
    voice = ("02"  # union branch 1: the record
             "04" "0000803f" "000000bf" "00"  # embedding: a block of 2 floats, then the end block
             "0000000000005940" "0000000000805640" "0000000000005e40"  # f0 median, low, high
             "0000000000407f40" "0000000000709740"  # formants 1, 2
             "02" "00000040" "00")  # spectrum
    expected = ("00" "00000404" "047331" "8001" "000000000000f03f" "0000000000000440" "80fa01" "040001"
                "0a7061757365" "02" "046573" "00" "00" "0000000000002440" "0000000000802440" "045331" + voice)
    data = encode(seg, 1028)
    assert data.hex() == expected
    assert decode(data, registry, expect="SpeechSegment") == seg
