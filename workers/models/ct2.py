"""Reading CTranslate2's model.bin (binary version 6) into numpy arrays.

Layout (little-endian; CTranslate2 src/models/model.cc `Model::load`): uint32 version, the spec
name and uint32 revision, uint32 variable count, then per variable its name, uint8 rank, uint32
dims, uint8 dtype id, uint32 byte count and the raw C-order data; then the alias table
(alias -> target name). Strings are a uint16 length that counts a trailing NUL, then the bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from workers.errors import ModelLoadError

DTYPES = {0: "<f4", 1: "i1", 2: "<i2", 3: "<i4", 4: "<f2", 5: "bfloat16"}  # include/ctranslate2/types.h
_OLD_ITEMSIZE = {4: "<f4", 2: "<i2", 1: "i1"}  # binary versions before 4 stored item sizes


@dataclass
class Ct2Model:
    spec: str
    revision: int
    version: int
    variables: dict[str, np.ndarray]
    aliases: dict[str, str] = field(default_factory=dict)

    def get(self, name: str) -> np.ndarray:
        """A variable by name, through the alias table (tied weights are stored once)."""
        if name in self.variables:
            return self.variables[name]
        if name in self.aliases:
            return self.variables[self.aliases[name]]
        raise ModelLoadError(f"CTranslate2 model ({self.spec}) has no variable {name!r}")

    def names(self) -> list[str]:
        return [*self.variables, *self.aliases]

    @property
    def quantized(self) -> bool:
        return any(n.endswith("_scale") for n in self.variables)


def read_model_bin(data: bytes | memoryview, what: str = "model.bin") -> Ct2Model:
    """Parse a whole model.bin; raises ModelLoadError on anything malformed (truncated, trailing bytes)."""
    buf = memoryview(data)
    off = 0

    def take(fmt: str) -> tuple:
        nonlocal off
        try:
            vals = struct.unpack_from(fmt, buf, off)
        except struct.error as e:
            raise ModelLoadError(f"{what}: truncated at byte {off}") from e
        off += struct.calcsize(fmt)
        return vals

    def string() -> str:
        nonlocal off
        (n,) = take("<H")
        if n == 0 or off + n > len(buf):
            raise ModelLoadError(f"{what}: invalid string at byte {off}")
        s = bytes(buf[off : off + n - 1]).decode("utf-8")
        off += n
        return s

    (version,) = take("<I")
    if not 1 <= version <= 6:
        raise ModelLoadError(f"{what}: unsupported CTranslate2 binary version {version} (not a model.bin?)")
    spec, revision = "", 1
    if version >= 2:
        spec = string()
        (revision,) = take("<I")
    (count,) = take("<I")
    variables: dict[str, np.ndarray] = {}
    for _ in range(count):
        name = string()
        (rank,) = take("<B")
        shape = take(f"<{rank}I") if rank else ()
        if version >= 4:
            type_id, nbytes = take("<BI")
            if type_id not in DTYPES:
                raise ModelLoadError(f"{what}: {name} has unknown dtype id {type_id}")
            dt = DTYPES[type_id]
        else:
            item, n = take("<BI")
            dt, nbytes = _OLD_ITEMSIZE[item], n * item
        if off + nbytes > len(buf):
            raise ModelLoadError(f"{what}: truncated while reading {name}")
        raw = buf[off : off + nbytes]
        off += nbytes
        if dt == "bfloat16":
            a = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            a = np.frombuffer(raw, dtype=dt)
        if a.size != int(np.prod(shape, dtype=np.int64)):
            raise ModelLoadError(f"{what}: invalid payload size for {name}")
        variables[name] = a.reshape(shape)
    aliases: dict[str, str] = {}
    if version >= 3:
        (n_alias,) = take("<I")
        for _ in range(n_alias):
            alias = string()
            aliases[alias] = string()
    if off != len(buf):
        raise ModelLoadError(f"{what}: {len(buf) - off} trailing bytes after the alias table (a bad join?)")
    return Ct2Model(spec, revision, version, variables, aliases)


def read_model_dir(path: Path) -> Ct2Model:
    f = path / "model.bin"
    try:
        data = f.read_bytes()
    except OSError as e:
        raise ModelLoadError(f"cannot read {f}: {e}") from e
    return read_model_bin(data, str(f))
