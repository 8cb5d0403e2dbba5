"""All settings, read from the environment in one place (`load_settings`).

Environment variables use the prefix `LIVEDUB_` and `__` for nesting, e.g.
`LIVEDUB_SEGMENT__MAX_SEGMENT_S=12` or `LIVEDUB_KAFKA__SASL_PASSWORD=...`.
Settings objects are frozen so a worker cannot drift from what it logged at start.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
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
    speaker_turns: bool = Field(True, description="label each segment's speaker and cut where the voice changes "
                                                  "(needs the speaker encoder: the model layer)")

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


class LiveSegmentSettings(SegmentSettings):
    """The segmentation of live calls: a listener waits for a segment's whole length, its closing pause
    and its processing, so segments are shorter and close at shorter pauses (measured in
    docs/bench/live.json; a file's defaults favour whole sentences)."""

    min_segment_s: float = Field(0.6, ge=0.0, description="a pause does not close a segment shorter than this")
    max_segment_s: float = Field(3.0, gt=1.0, description="hard cap; cut at the lowest-energy point near it")
    pause_long_s: float = Field(0.4, gt=0.0, description="pause needed to close a segment that just started")
    pause_short_s: float = Field(0.15, gt=0.0, description="pause that closes a segment near max_segment_s")
    search_window_s: float = Field(1.0, gt=0.0, description="window before max_segment_s searched for the cut")


class AsrSettings(_Frozen):
    backend: str = "faster-whisper"
    model: str = Field("base", description="'base' (packaged), 'tiny.en' (packaged) or a hub id / local dir")
    task: str = Field("transcribe", pattern="^(transcribe|translate)$",
                      description="translate: Whisper speaks English text for any source (one model call, no MT)")
    precision: str = Field("auto", pattern="^(auto|fp32|int8|fp16)$",
                           description="optimum-whisper: auto = int8 on cpu, fp16 on cuda")
    compute_type: str = "int8"
    beam_size: int = Field(1, ge=1)
    temperatures: tuple[float, ...] = Field(
        (0.0,), min_length=1,
        description="decoding temperatures; values after the first are a sampled fallback for low-confidence "
                    "segments (more robust, but slower and not reproducible)")
    cpu_threads: int = Field(0, ge=0, description="0 = one per core (at most 4)")
    window_s: float = Field(30.0, ge=2.0, le=30.0,
                            description="faster-whisper's encoder window for a segment shorter than it by 1 s: "
                                        "Whisper's own 30 s, or less, which costs less (the encoder pays for "
                                        "the whole window); a result that loops is decoded again in 30 s")


class TranslateSettings(_Frozen):
    backend: str = "apertium"
    apertium_pipelines: int = Field(3, ge=0,
                                    description="Apertium modes kept running at once, least recently used closed "
                                                "first (each holds its tools' dictionaries: 0.2-0.7 GB); 0: the "
                                                "command line per segment")
    precision: str = Field("auto", pattern="^(auto|fp32|int8|fp16)$",
                           description="marian / nllb: auto = int8 on cpu, fp16 on cuda")
    beams: int = Field(1, ge=1, description="beam search width of the neural backends (1 = greedy, lowest latency)")
    marian_model: str = Field("Helsinki-NLP/opus-mt-{src}-{tgt}",
                              description="hub id (or local directory) template of a Marian model per pair")
    marian_pairs: tuple[str, ...] = Field(("en-es", "es-en", "en-fr", "fr-en", "en-de", "de-en", "es-fr", "fr-es"),
                                          description="pairs the marian backend offers when their model is here")
    nllb_model: str = Field("facebook/nllb-200-distilled-600M",
                            description="NLLB-200 / M2M-100 hub id or local directory (one model, every pair)")
    pivots: tuple[str, ...] = Field(("es", "en"),
                                    description="languages to bridge a missing pair through, tried in this order "
                                                "before any other shared language (one pivot at most)")


class TtsSettings(_Frozen):
    backend: str = "auto"
    piper_precision: str = Field("fp32", pattern="^(fp32|int8)$",
                                 description="int8: the voice quantised through Optimum (see the README's figures)")
    mms_model: str = Field("facebook/mms-tts-{iso3}",
                           description="hub id (or local directory) template of an MMS-TTS (VITS) voice per language")
    mms_languages: tuple[str, ...] = Field(("es", "fr", "de", "pt", "it", "ca", "gl", "nl", "pl", "ru"),
                                           description="languages the mms backend offers when their model is here")
    warm_languages: tuple[str, ...] = Field(
        ("es",), description="languages a live worker synthesises, and whose candidate voices it measures, before it "
                             "reports ready (otherwise a session's first segment in a language waits 3-4 s for it)")
    max_stretch: float = Field(1.6, ge=1.0, description="speed-up at most this much to fit a segment")
    min_stretch: float = Field(0.8, gt=0.0, le=1.0, description="slow down at most this much")


class LipsyncSettings(_Frozen):
    backend: str = "landmarks"
    detect_every_s: float = Field(2.0, gt=0.0, description="re-detect the face this often; track between")
    wav2lip_onnx: Path | None = Field(None, description="Wav2Lip ONNX export (default: <cache_dir>/models)")


class SpeakerSettings(_Frozen):
    backend: str = Field("ge2e", description="speaker encoder: ge2e (packaged, ONNX), ecapa or xvector "
                                            "(speechbrain, hub)")
    ecapa_model: str = "speechbrain/spkrec-ecapa-voxceleb"
    xvector_model: str = "speechbrain/spkrec-xvect-voxceleb"


class VoiceSettings(_Frozen):
    """The dub in the speaker's own voice (workers/voice/match.py)."""

    match: bool = Field(True, description="give each speaker the closest TTS voice, kept for the session")
    backend: str = Field("praat", description="converter towards the speaker: praat (pitch, formants), speecht5 "
                                             "(neural, hub, needs speaker.backend=xvector), or none")
    speecht5_model: str = "microsoft/speecht5_vc"
    speecht5_vocoder: str = "microsoft/speecht5_hifigan"


class OnnxSettings(_Frozen):
    """How every ONNX model runs (workers/onnx.py)."""

    graph_optimization: str = Field("all", pattern="^(disabled|basic|extended|all)$")
    intra_op_threads: int = Field(1, ge=0, description="threads per model call (0 = onnxruntime's default)")
    inter_op_threads: int = Field(1, ge=0)
    tensorrt: bool = Field(True, description="try TensorRT before CUDA on a GPU (fp16, engine cache)")
    device_id: int = Field(0, ge=0)


class KafkaSettings(_Frozen):
    bootstrap_servers: str = "127.0.0.1:9092"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    session_idle_s: float = Field(60.0, gt=0.0, description="a worker ends a session with no record for this long "
                                                           "(stream time: its publisher died); keep it above the "
                                                           "longest stall upstream (a killed worker's partitions "
                                                           "wait a session timeout, 10 s, to move)")


class SchemaRegistrySettings(_Frozen):
    url: str = "http://127.0.0.1:8081/apis/ccompat/v7"
    username: str | None = None
    password: SecretStr | None = None


class LiveKitSettings(_Frozen):
    """The meeting server (a LiveKit SFU) calls are joined through; `up --with-livekit` runs one locally."""

    url: str = Field("ws://127.0.0.1:7880", description="the server's WebSocket URL")
    api_key: str | None = None
    api_secret: SecretStr | None = None
    identity: str = Field("livedub", min_length=1, description="the bot's identity in a room (its tracks are named "
                                                               "after the participant they dub, e.g. alice:es:audio)")
    delay_s: float = Field(6.0, gt=0.0, description="playout delay D: the listener gets each speaker this long after "
                                                    "they spoke, with the dub on the original timing")
    max_delay_s: float = Field(12.0, gt=0.0, description="D rises when segments come late, up to this")
    max_width: int = Field(640, ge=64, description="camera frames wider than this are scaled down before dubbing")
    audio_lag_s: float = Field(
        0.03, ge=0.0, le=0.5,
        description="how much longer audio takes than video from a sender to a LiveKit SDK client's streams (their "
                    "jitter buffers, which adapt under load; 0.03 s centred the offsets measured on loopback): the bot "
                    "takes it off the audio it hears and holds its video back by it")
    segment: LiveSegmentSettings = Field(
        LiveSegmentSettings(),
        description="the segmentation of calls (LIVEDUB_LIVEKIT__SEGMENT__*), in place of LIVEDUB_SEGMENT__*: "
                    "D must cover a segment's length, its closing pause and its processing, so live segments are "
                    "shorter and close at shorter pauses than a file's")
    asr_window_s: float = Field(10.0, ge=2.0, le=30.0,
                                description="Whisper's encoder window in calls (LIVEDUB_ASR__WINDOW_S for a call's "
                                            "segments): 10 s decodes a 2 s segment ~3x faster than 30 s at the same "
                                            "chrF here (README, Live calls)")
    poll_s: float = Field(2.0, gt=0.0, description="`livedub call --rooms`: how often the server's rooms are listed "
                                                   "to find ones to join")
    idle_s: float = Field(30.0, ge=0.0, description="`livedub call --rooms`: a room with nobody to dub for this long "
                                                   "is left (so that the server can close it)")
    max_rooms: int = Field(8, ge=1, description="`livedub call --rooms`: rooms one bot process dubs at most (its CPU "
                                                "or GPU bounds it; more replicas take the rest)")


class TopicSettings(_Frozen):
    prefix: str = "livedub."
    partitions: int = Field(12, ge=1)
    replication: int = Field(1, ge=1, description="replication factor of topics `livedub topics --create` makes")
    config: dict[str, str] = Field(default_factory=dict,
                                   description="topic configs for new topics, e.g. {\"retention.ms\": \"86400000\"}")


class RetrySettings(_Frozen):
    """The one retry policy for a record whose stage call failed with a retryable error."""

    retries: int = Field(2, ge=0, description="attempts after the first one")
    backoff_s: float = Field(0.1, ge=0.0, description="wait before the first retry; doubled after each")
    deadline_s: float = Field(120.0, gt=0.0, description="a stage call on one record past this is abandoned and "
                                                        "the record dead-lettered (the worker then reports not live "
                                                        "until the call returns)")
    max_attempts: int = Field(3, ge=1, description="a record the worker died (or hung) on this many times is "
                                                   "dead-lettered on sight, not processed again")
    inflight_dir: Path | None = Field(None, description="where a worker notes the record in flight, for its next "
                                                       "life (default <cache_dir>/inflight; an emptyDir survives "
                                                       "container restarts)")


class RunnerSettings(_Frozen):
    queue_size: int = Field(8, ge=1, description="bound of each inter-stage queue (backpressure)")
    audio_chunk_s: float = Field(0.1, gt=0.0, description="audio chunk size fed to the segmenter")


class OutputSettings(_Frozen):
    """How the dubbed output's audio is mixed (workers/media/files.py: FileSink, in process and over Kafka).

    Outside the dubbed spans the original audio is copied untouched (room sound, laughter); inside
    a span the original is ducked under the dub, with short gain ramps at the span's edges.
    """

    duck_db: float = Field(
        -30.0, le=0.0,
        description="gain of the original audio under the dub inside a dubbed span, in dB (-30: the original "
                    "voice is not heard over the dub); -inf: silence, the dub replaces the original")
    duck_ramp_s: float = Field(0.04, ge=0.0, le=0.5,
                               description="length of the gain ramps at a span's edges, inside the span (no clicks)")


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
    speaker: SpeakerSettings = SpeakerSettings()
    voice: VoiceSettings = VoiceSettings()
    runner: RunnerSettings = RunnerSettings()
    output: OutputSettings = OutputSettings()
    retry: RetrySettings = RetrySettings()
    onnx: OnnxSettings = OnnxSettings()
    kafka: KafkaSettings = KafkaSettings()
    schema_registry: SchemaRegistrySettings = SchemaRegistrySettings()
    topics: TopicSettings = TopicSettings()
    livekit: LiveKitSettings = LiveKitSettings()


ENV_PREFIX = "LIVEDUB_"


def env_names(model: type[BaseModel] = Settings, prefix: str = ENV_PREFIX) -> dict[str, bool]:
    """Every environment variable that names a setting -> whether names below it are open (a dict field)."""
    out: dict[str, bool] = {}
    for name, f in model.model_fields.items():
        env = f"{prefix}{name.upper()}"
        ann = f.annotation
        out[env] = getattr(ann, "__origin__", ann) is dict
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out |= env_names(ann, f"{env}__")
    return out


def unknown_env(environ: Mapping[str, str]) -> list[str]:
    """`LIVEDUB_*` variables that name no setting, each with the nearest real one.

    pydantic-settings ignores them silently, which is how a deployment drifts from the code:
    a misspelt variable would leave a worker on its default without a word.
    """
    known = env_names()
    open_prefixes = tuple(f"{k}__" for k, is_open in known.items() if is_open)
    problems = []
    for var in sorted(environ):
        up = var.upper()
        if not up.startswith(ENV_PREFIX) or up in known or up.startswith(open_prefixes):
            continue
        near = difflib.get_close_matches(up, list(known), n=1, cutoff=0.0)
        problems.append(f"{var} (did you mean {near[0]}?)" if near else var)
    return problems


def load_settings(**overrides: object) -> Settings:
    """The one place the environment is read; overrides win over env."""
    from pydantic import ValidationError

    from workers.errors import ConfigError

    unknown = unknown_env(os.environ)
    if unknown:
        raise ConfigError(f"environment variables that name no LiveDub setting: {'; '.join(unknown)}")
    try:
        return Settings(**overrides)
    except ValidationError as e:
        raise ConfigError(f"invalid settings: {e}") from e
