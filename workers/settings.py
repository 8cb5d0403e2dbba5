"""All settings, read from the environment in one place (`load_settings`).

Environment variables use the prefix `LIVEDUB_` and `__` for nesting, e.g.
`LIVEDUB_SEGMENT__MAX_SEGMENT_S=12` or `LIVEDUB_KAFKA__SASL_PASSWORD=...`.
Settings objects are frozen so a worker cannot drift from what it logged at start.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SegmentSettings(_Frozen):
    """Context-adaptive silence detection (see workers/segment/adaptive.py)."""

    backend: str = "silero"
    threshold: float = Field(0.5, ge=0.0, le=1.0, description="speech probability above which a frame is speech")
    neg_threshold: float = Field(0.35, ge=0.0, le=1.0, description="probability below which a frame is silence")
    min_speech_s: float = Field(0.25, ge=0.0, description="shorter bursts of speech are dropped as noise")
    min_segment_s: float = Field(1.0, ge=0.0, description="a pause does not close a segment shorter than this")
    max_segment_s: float = Field(10.0, gt=1.0, description="hard cap; cut at the lowest-energy point near it")
    pause_long_s: float = Field(0.8, gt=0.0, description="pause needed to close a segment that just started")
    pause_short_s: float = Field(0.2, gt=0.0, description="pause that closes a segment near max_segment_s")
    search_window_s: float = Field(2.0, gt=0.0, description="window before max_segment_s searched for the cut")
    pad_s: float = Field(0.1, ge=0.0, description="audio kept before and after the speech in each segment")

    @field_validator("neg_threshold")
    @classmethod
    def _neg_le_threshold(cls, v: float, info) -> float:
        thr = info.data.get("threshold")
        if thr is not None and v > thr:
            raise ValueError(f"neg_threshold ({v}) must not exceed threshold ({thr})")
        return v

    @field_validator("pause_short_s")
    @classmethod
    def _short_le_long(cls, v: float, info) -> float:
        long = info.data.get("pause_long_s")
        if long is not None and v > long:
            raise ValueError(f"pause_short_s ({v}) must not exceed pause_long_s ({long})")
        return v


class AsrSettings(_Frozen):
    backend: str = "faster-whisper"
    model: str = Field("base", description="'base' (packaged), 'tiny.en' (packaged) or a hub id / local dir")
    compute_type: str = "int8"
    beam_size: int = Field(1, ge=1)
    cpu_threads: int = Field(0, ge=0, description="0 = one per core (at most 4)")


class TranslateSettings(_Frozen):
    backend: str = "apertium"


class TtsSettings(_Frozen):
    backend: str = "auto"
    max_stretch: float = Field(1.6, ge=1.0, description="speed-up at most this much to fit a segment")
    min_stretch: float = Field(0.8, gt=0.0, le=1.0, description="slow down at most this much")


class LipsyncSettings(_Frozen):
    backend: str = "landmarks"
    detect_every_s: float = Field(2.0, gt=0.0, description="re-detect the face this often; track between")
    wav2lip_onnx: Path | None = Field(None, description="Wav2Lip ONNX export (default: <cache_dir>/models)")


class KafkaSettings(_Frozen):
    bootstrap_servers: str = "127.0.0.1:9092"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None


class SchemaRegistrySettings(_Frozen):
    url: str = "http://127.0.0.1:8081/apis/ccompat/v7"
    username: str | None = None
    password: SecretStr | None = None


class TopicSettings(_Frozen):
    prefix: str = "livedub."
    partitions: int = Field(12, ge=1)
    replication: int = Field(1, ge=1)


class RunnerSettings(_Frozen):
    queue_size: int = Field(8, ge=1, description="bound of each inter-stage queue (backpressure)")
    audio_chunk_s: float = Field(0.1, gt=0.0, description="audio chunk size fed to the segmenter")


class Settings(BaseSettings):
    """Everything configurable, one frozen object."""

    model_config = SettingsConfigDict(
        env_prefix="LIVEDUB_", env_nested_delimiter="__", frozen=True, extra="ignore"
    )

    device: str = Field("cpu", pattern="^(cpu|cuda)$")
    cache_dir: Path = Path.home() / ".cache" / "livedub"
    http_port: int = 9464
    segment: SegmentSettings = SegmentSettings()
    asr: AsrSettings = AsrSettings()
    translate: TranslateSettings = TranslateSettings()
    tts: TtsSettings = TtsSettings()
    lipsync: LipsyncSettings = LipsyncSettings()
    runner: RunnerSettings = RunnerSettings()
    kafka: KafkaSettings = KafkaSettings()
    schema_registry: SchemaRegistrySettings = SchemaRegistrySettings()
    topics: TopicSettings = TopicSettings()


def load_settings(**overrides: object) -> Settings:
    """The one place the environment is read; overrides win over env."""
    from pydantic import ValidationError

    from workers.errors import ConfigError

    try:
        return Settings(**overrides)
    except ValidationError as e:
        raise ConfigError(f"invalid settings: {e}") from e
