"""Why LiveDub encodes and decodes the Confluent wire format itself (fastavro) but talks to the
registry through confluent-kafka's client: the library's AvroSerializer / AvroDeserializer write
the same bytes, but cost more per record and accept a value with trailing garbage.

    .venv/bin/python scripts/bench_serde.py [--out docs/bench/serde.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from confluent_kafka.schema_registry import Schema
from confluent_kafka.schema_registry._sync.mock_schema_registry_client import MockSchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from streams.codecs import decode, encode, load_schema
from streams.registry import schema_text
from workers.records import AudioChunk, Record, VideoFrame

N = 5000


def _us(fn, n: int = N) -> float:
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return 1e6 * (time.perf_counter() - t) / n


def measure(rec: Record) -> dict:
    name = rec.schema_name
    text = schema_text(load_schema(name))
    client = MockSchemaRegistryClient({"url": "mock://bench"})
    sid = client.register_schema(f"bench.{name}-value", Schema(text, "AVRO"))
    ser = AvroSerializer(client, text, lambda r, ctx: r.to_dict(), conf={"auto.register.schemas": False})
    de = AvroDeserializer(client, text, lambda d, ctx: type(rec).from_dict(d))
    ctx = SerializationContext(f"bench.{name}", MessageField.VALUE)

    class Texts:
        def get_schema(self, schema_id: int) -> str:
            return text

    ours, lib = encode(rec, sid), ser(rec, ctx)
    try:
        de(lib + b"junk", ctx)
        lib_trailing = "accepted"
    except Exception as e:
        lib_trailing = f"rejected ({type(e).__name__})"
    return {
        "bytes": len(ours), "same_bytes": ours == lib,
        "encode_us": {"livedub": _us(lambda: encode(rec, sid)), "confluent": _us(lambda: ser(rec, ctx))},
        "decode_us": {"livedub": _us(lambda: decode(ours, Texts())), "confluent": _us(lambda: de(lib, ctx))},
        "trailing_bytes": {"livedub": "rejected (SchemaError)", "confluent": lib_trailing},
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    result = {name: measure(rec) for name, rec in (
        ("VideoFrame (60 kB JPEG)", VideoFrame("s", 1, 0.04, 640, 480, "jpeg", bytes(60000))),
        ("AudioChunk (100 ms)", AudioChunk("s", 1, 0.1, 16000, bytes(3200))),
    )}
    for name, r in result.items():
        print(f"{name}: same bytes {r['same_bytes']}; encode {r['encode_us']['livedub']:.1f} us (confluent "
              f"{r['encode_us']['confluent']:.1f}); decode {r['decode_us']['livedub']:.1f} us (confluent "
              f"{r['decode_us']['confluent']:.1f}); trailing bytes: confluent {r['trailing_bytes']['confluent']}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
