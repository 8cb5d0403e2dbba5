"""Segment stage: a session's audio chunks -> speech segments, emitted as soon as each closes."""

from __future__ import annotations

import logging
from abc import abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from workers.errors import BadInputError, LiveDubError
from workers.records import AudioChunk, SessionControl, SpeechSegment, VoiceProfile, float_to_pcm, now
from workers.segment.adaptive import AdaptiveSegmenter, Cut
from workers.segment.resample import StreamResampler
from workers.stage import Backend, Stage, warm_up_noise
from workers.voice.speakers import ChangeWatch, SessionSpeakers
from workers.voice.spectrum import spectrum
from workers.voice.stats import measure

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000


class VadBackend(Backend):
    """Frame-level speech probability at 16 kHz; streaming state is per session."""

    frame_samples: int = 512

    @abstractmethod
    def new_state(self) -> Any: ...

    @abstractmethod
    def speech_prob(self, frame: np.ndarray, state: Any) -> float:
        """Probability that this `frame_samples`-long float32 frame is speech."""


@dataclass
class _Session:
    control: SessionControl
    resampler: StreamResampler | None
    vad_state: Any
    segmenter: AdaptiveSegmenter
    pending: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    seq: int = 0
    last_captured_at: float = 0.0
    last_chunk_end_s: float = 0.0
    speakers: SessionSpeakers = field(default_factory=SessionSpeakers)
    watch: ChangeWatch = field(default_factory=ChangeWatch)


class SegmentStage(Stage[AudioChunk, SpeechSegment]):
    name = "segment"
    backend: VadBackend

    def __init__(self, backend: VadBackend, metrics=None) -> None:
        super().__init__(backend, metrics)
        self._sessions: dict[str, _Session] = {}
        self.speaker = None  # the speaker encoder, when speaker turns are on and it can run

    def load(self) -> None:
        super().load()
        if self.backend.settings.segment.speaker_turns and self.speaker is None:
            from workers.registry import create_backend

            enc = create_backend("speaker", self.backend.settings)
            reason = type(enc).unavailable()
            if reason:
                log.warning("segment: speaker turns are off (%s): segments are cut at pauses only and carry "
                            "no speaker, so the dub uses the plain voice", reason)
                return
            enc.load()
            self.speaker = enc

    def warm_up(self) -> None:
        noise = warm_up_noise(rate=SAMPLE_RATE)
        state = self.backend.new_state()
        for i in range(0, len(noise) - self.backend.frame_samples + 1, self.backend.frame_samples):
            self.backend.speech_prob(noise[i:i + self.backend.frame_samples], state)
        if self.speaker is not None:
            self.speaker.embed(noise, SAMPLE_RATE)

    def open_session(self, control: SessionControl) -> None:
        """Register a session's target languages; chunks of unknown sessions are rejected."""
        seg = self.backend.settings.segment
        self._sessions[control.session_id] = _Session(
            control=control,
            resampler=None,
            vad_state=self.backend.new_state(),
            segmenter=AdaptiveSegmenter(seg, SAMPLE_RATE, self.backend.frame_samples),
        )

    def end_session(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)

    def safe_until(self, session_id: str) -> float:
        """Media time before which every segment of the session has been emitted."""
        s = self._sessions.get(session_id)
        return s.segmenter.safe_until_s if s else 0.0

    def _handle(self, chunk: AudioChunk) -> list[SpeechSegment]:
        s = self._sessions.get(chunk.session_id)
        if s is None:
            raise BadInputError(f"audio for session {chunk.session_id!r} that was never started")
        if s.resampler is None:
            s.resampler = StreamResampler(chunk.sample_rate, SAMPLE_RATE)
        elif s.resampler.src_rate != chunk.sample_rate:
            raise BadInputError(
                f"session {chunk.session_id}: sample rate changed from {s.resampler.src_rate} "
                f"to {chunk.sample_rate} mid-stream"
            )
        gap = chunk.pts_s - s.last_chunk_end_s
        if s.last_chunk_end_s and gap > 0.01:  # lost audio: keep the clock right with silence
            s.pending = np.concatenate([s.pending, np.zeros(round(gap * SAMPLE_RATE), np.float32)])
        s.last_captured_at = chunk.captured_at
        s.last_chunk_end_s = chunk.pts_s + chunk.duration_s
        audio = np.concatenate([s.pending, s.resampler.push(chunk.samples())])
        n = self.backend.frame_samples
        usable = len(audio) // n * n
        s.pending = audio[usable:]
        cuts = self._frames(s, audio[:usable])
        if self.speaker is not None and hasattr(self.speaker, "embed_windows"):
            cuts += self._speaker_change(s)
        return [self._emit(s, c) for c in cuts]

    def _speaker_change(self, s: _Session) -> list[Cut]:
        """Cut the open segment where the voice changes (two people taking turns with a short gap)."""
        open_ = s.segmenter.open_audio()
        if open_ is None:
            return []
        start, audio = open_
        change = s.watch.check(start, audio, self.speaker.embed_windows)
        if change is None:
            return []
        turn = s.watch.locate(start, audio, change)
        return s.segmenter.cut_at(turn, SAMPLE_RATE // 20)  # already at a pause: only its quietest 10 ms

    def _frames(self, s: _Session, audio: np.ndarray) -> list[Cut]:
        n = self.backend.frame_samples
        cuts: list[Cut] = []
        for i in range(0, len(audio), n):
            frame = audio[i : i + n]
            cuts += s.segmenter.push(frame, self.backend.speech_prob(frame, s.vad_state))
        return cuts

    def _flush(self, session_id: str) -> list[SpeechSegment]:
        s = self._sessions.pop(session_id, None)
        if s is None:
            return []
        tail = np.concatenate([s.pending, s.resampler.flush() if s.resampler else np.zeros(0, np.float32)])
        cuts = self._frames(s, np.pad(tail, (0, -len(tail) % self.backend.frame_samples))) if len(tail) else []
        return [self._emit(s, c) for c in cuts + s.segmenter.finish()]

    def _who(self, s: _Session, audio: np.ndarray) -> tuple[str, VoiceProfile | None]:
        """The session speaker of a segment's audio, and how they sound (when speaker turns are on)."""
        if self.speaker is None or len(audio) < SAMPLE_RATE // 2:
            return "", None
        try:
            emb = self.speaker.embed(audio, SAMPLE_RATE)
            stats = measure(audio, SAMPLE_RATE)
            timbre = spectrum(audio, SAMPLE_RATE)
        except LiveDubError as e:  # no speech for the encoder: the segment still goes on, unlabelled
            log.debug("segment: no speaker for a segment: %s", e)
            return "", None
        spk = s.speakers.assign(emb, stats, timbre)
        return spk.label, spk.profile()

    def _emit(self, s: _Session, cut: Cut) -> SpeechSegment:
        c = s.control
        speaker, voice = self._who(s, cut.audio)
        seg = SpeechSegment(
            session_id=c.session_id,
            seq=s.seq,
            start_s=cut.start / SAMPLE_RATE,
            end_s=cut.end / SAMPLE_RATE,
            sample_rate=SAMPLE_RATE,
            pcm=float_to_pcm(cut.audio),
            cut_reason=cut.reason,
            target_langs=c.target_langs,
            source_lang=c.source_lang,
            # the segment's last audio arrived with the latest chunk, minus how far past the end we are
            speech_end_at=s.last_captured_at - max(0.0, s.last_chunk_end_s - cut.end / SAMPLE_RATE),
            produced_at=now(),
            speaker=speaker,
            voice=voice,
        )
        s.seq += 1
        return seg
