"""ACE-Step 1.5 turbo, text2music and cover, read top to bottom like the paper's figure.

    caption ─► Qwen3 ─────────────┐
    lyrics ──► Qwen3 embeddings ──┼─► condition encoder ─► DiT × 8 Euler steps ─► VAE decode ─► audio
    silence (timbre reference) ───┘        ▲
    source audio ─► VAE encode ─► FSQ tokenize ─► detokenize ─► context hints (covers)
    5 Hz LM audio codes ───────────────────────► detokenize ─► context hints (planned songs)

Each track's noise comes from its own CPU generator at its own length. Two ways to run a batch:

- exact (the default, ``ENGINE_EXACT_BATCHES``): every track runs through the text encoder, the
  condition encoder, the DiT and the VAE in calls of its own, at its own shapes. Padding to the
  longest row, masks and the matrix shapes of a batch change floating-point reduction orders (on
  a CPU as on a GPU), so this is how a track's samples are bit-identical alone and in any batch.
- batched: one call per stage for the whole batch, with key-padding masks, so a track equals the
  same track alone up to float rounding (about 1e-7 in fp32 on a CPU, 49 dB SNR in bf16 on a GPU).

A track whose latents or audio hold invalid numbers fails alone: its result is a GenerationError
and the other tracks of the batch are delivered.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from engine.acestep import edit
from engine.acestep.alignment import sung_lines
from engine.acestep.alignment_pass import (
    LyricTokens,
    decoder_of,
    heads_of,
    lyric_attention,
    lyric_tokens,
    own_cross,
    renoise,
    timing,
)
from engine.acestep.alignment_score import lyric_score
from engine.acestep.checkpoints import DIT_DIR, TEXT_ENCODER_DIR, VAE_DIR, require_complete
from engine.acestep.config import FRAMES_PER_SECOND
from engine.acestep.decoder import DiTDecoder
from engine.acestep.model import AceStepDiT, load_dit, load_silence_latent
from engine.acestep.sampler import Phase, cover_phase_plan, sample, turbo_timesteps
from engine.acestep.text import (
    COVER_INSTRUCTION,
    INSTRUMENTAL_LYRICS,
    TEXT2MUSIC_INSTRUCTION,
    Metas,
    TextEncoder,
    caption_prompt,
    lyrics_prompt,
)
from engine.acestep.vae import Vae
from storage.contract.errors import GenerationError
from storage.contract.results import LyricTiming

log = logging.getLogger("songbot.engine")

MIN_FRAMES = 128  # upstream's floor (about 5 s): shorter tracks are generated this long, then cut
Stage = Callable[[str, float], None]
# One track's result: float32 [samples, 2] within [-1, 1], or the sentence its job fails with.
Song = np.ndarray | GenerationError
INVALID_LATENTS = "The model produced invalid numbers for this song; please try another seed."
INVALID_AUDIO = "The decoder produced invalid audio for this song; please try again."


@dataclass(frozen=True)
class Track:
    """One track to sample, in the model's own terms.

    Args:
        caption: What the song sounds like.
        lyrics: Lyrics; "" means instrumental for a song, and "no lyrics given" for a cover (its
            source keeps its vocals, unless ``instrumental``).
        language: Vocal language code, or "unknown".
        metas: bpm, time signature, key and duration for the caption prompt.
        seed: Seeds the noise (and the source posterior sample of a cover).
        source_audio: Covers: float32 [samples, 2] at 48 kHz.
        audio_codes: 5 Hz FSQ codes (e.g. from the LM planner): they become the context hints.
        strength: Share of the steps that follow the source or the codes (0..1).
        base_latents: Repaint and extend: the base song's latents [frames, 64] (``engine/acestep/edit.py``).
        span: Repaint and extend: the latent frames [start, end) to regenerate; the rest is the base's.
        base_audio: Repaint and extend: the base song's own audio, kept outside the span.
        reference_audio: A clip whose timbre the song takes, float32 [samples, 2] at 48 kHz.
        base_from_audio: The base latents were encoded from ``base_audio`` (none were kept), so the
            base's samples come from ``base_audio`` rather than from decoding them.
        instrumental: Ask for no vocals even where ``lyrics`` is "" in a cover.
    """

    caption: str
    lyrics: str
    language: str
    metas: Metas
    seed: int
    source_audio: np.ndarray | None = None
    audio_codes: Sequence[int] | None = None
    strength: float = 1.0
    base_latents: np.ndarray | None = None
    span: tuple[int, int] | None = None
    base_audio: np.ndarray | None = None
    reference_audio: np.ndarray | None = None
    base_from_audio: bool = False
    instrumental: bool = False

    @property
    def guided(self) -> bool:
        """Whether the track follows a source (cover) or codes rather than the caption alone."""
        return self.source_audio is not None or self.audio_codes is not None


class AceStepPipeline:
    """The loaded models and the generation procedure."""

    def __init__(
        self,
        dit: AceStepDiT,
        vae: Vae,
        text: TextEncoder,
        silence: torch.Tensor,
        shift: float = 3.0,
        exact: bool = True,
    ):
        self.dit, self.vae, self.text, self.silence = dit, vae, text, silence
        self.device, self.dtype = silence.device, silence.dtype
        self.shift = shift
        self.exact = exact  # every track in calls of its own: bit-identical alone and in any batch
        self.timesteps = turbo_timesteps(shift)
        self.decoder: Callable[..., torch.Tensor] = dit.decoder  # compiled by ``compile_decoder``
        self._choose_kernels()

    def compile_decoder(self, mode: str | None = None) -> bool:
        """CUDA only: compile the DiT's layers with ``torch.compile`` (fused norms, modulations, gates).

        Regional: the 24 layers share one compiled graph, so compiling takes about one layer's time
        (on the first call). Off by default; the same modules and weights, so the conformance kits
        hold. If compiling fails, the decoder runs eagerly. Returns whether it was switched on.
        """
        if self.device.type != "cuda":
            return False
        self.dit.decoder.compile_layers(mode)
        self.decoder = _CompiledOrEager(self.dit.decoder)
        return True

    @classmethod
    def from_dir(cls, model_dir: Path, device: torch.device, dtype: torch.dtype, exact: bool = True) -> AceStepPipeline:
        """Load all three models from an official checkpoint folder (checked first)."""
        model_dir = Path(model_dir)
        require_complete(model_dir)
        dit = load_dit(model_dir / DIT_DIR, device, dtype)
        silence = load_silence_latent(model_dir / DIT_DIR, device, dtype)
        vae = Vae.load(model_dir / VAE_DIR, device, dtype)
        text = TextEncoder.load(model_dir / TEXT_ENCODER_DIR, device, dtype)
        return cls(dit, vae, text, silence, exact=exact)

    def __call__(self, tracks: Sequence[Track], stage: Stage | None = None) -> list[np.ndarray]:
        """Generate each track; returns float32 [samples, 2] arrays within [-1, 1].

        Raises:
            GenerationError: the first track that failed (``generate`` keeps the others).
        """
        songs = self.generate(tracks, stage)
        for song in songs:
            if isinstance(song, GenerationError):
                raise song
        return songs  # type: ignore[return-value]

    @torch.no_grad()
    def generate(
        self,
        tracks: Sequence[Track],
        stage: Stage | None = None,
        keep: list[np.ndarray] | None = None,
        timings: list[LyricTiming | None] | None = None,
    ) -> list[Song]:
        """Generate each track: its audio, or the GenerationError its job fails with (that track alone).

        ``keep``, when given, receives each track's latents [frames, 64] (stored for later edits).
        ``timings``, when given, receives each track's lyric timing (``time_lyrics``; None for an
        instrumental, or when the timing pass failed: that never fails the song).
        """
        report = stage or (lambda _name, _pct: None)
        self._choose_kernels()
        report("encoding", 0.0)
        tracks = [edit.with_base_latents(self.vae, t) for t in tracks]
        groups = [[track] for track in tracks] if self.exact else [list(tracks)]
        steps = len(self.timesteps) * len(groups)
        latents: list[torch.Tensor] = []
        for number, group in enumerate(groups):
            done = number * len(self.timesteps)

            def on_step(step: int, _total: int, done: int = done) -> None:
                report("generating", 100.0 * (done + step) / steps)

            # Later tracks (exact mode) are encoded while the stage already says generating.
            encoded = (lambda: report("encoding", 100.0)) if number == 0 else None
            latents.extend(self._sample(group, on_step, encoded, timings))
        if keep is not None:
            keep.extend(z.float().cpu().numpy() for z in latents)
        songs = self._decode(tracks, latents, report)
        return [self._spliced(t, song) for t, song in zip(tracks, songs, strict=True)]

    def _choose_kernels(self) -> None:
        """CUDA: exact batches need the same convolution algorithms in every engine process.

        cuDNN's autotuner (``benchmark``) times candidates when it first meets a shape and may pick
        another algorithm in the next process, so a re-roll after a restart could differ; exact
        batches use its deterministic choice instead. Set at load and before each call (``exact``
        may be switched between calls).
        """
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = not self.exact
            torch.backends.cudnn.deterministic = self.exact

    def _sample(
        self,
        tracks: Sequence[Track],
        on_step: Callable[[int, int], None],
        encoded: Callable[[], None] | None,
        timings: list[LyricTiming | None] | None = None,
    ) -> list[torch.Tensor]:
        """Condition and sample one group of tracks; each track's own latents [frames, 64].

        With ``timings``, each track's lyrics are then timed on its final latents and first condition.
        """
        lengths = [self._length(t) for t in tracks]
        hints = [self._hints(t, n) for t, n in zip(tracks, lengths, strict=True)]
        phases = self._phases(tracks, lengths, hints)
        if encoded is not None:
            encoded()
        frame_mask = _frame_mask(lengths, self.device)
        noise = self._noise(tracks, lengths)
        plan = cover_phase_plan(len(self.timesteps), [t.strength if t.guided else 1.0 for t in tracks])
        latents = sample(self.decoder, noise, phases, plan, self.timesteps, frame_mask, on_step=on_step)
        edit.keep_outside(latents, tracks, lengths, self.silence)
        if timings is not None:
            timings.extend(
                self._timing(t, latents[i, :n], phases[0], i)
                for i, (t, n) in enumerate(zip(tracks, lengths, strict=True))
            )
        return [latents[i, :n] for i, n in enumerate(lengths)]

    # -- lyric timing -----------------------------------------------------------------------------

    @torch.no_grad()
    def time_lyrics(self, track: Track, latents: np.ndarray) -> LyricTiming | None:
        """When each sung line of ``track`` starts in a song made from it, given its latents [frames, 64].

        The song's condition is encoded again (caption, lyrics, codes or source, as ``track`` has
        them); an edit is timed as a whole song of its own. None for an instrumental.
        """
        track, kept = self._stored(track, latents)
        return self._timing(track, kept, lambda: self._own_phase(track, kept.shape[0]), 0)

    def _timing(
        self, track: Track, latents: torch.Tensor, phase: Phase | Callable[[], Phase], row: int
    ) -> LyricTiming | None:
        """The timing pass for row ``row`` of ``phase`` (or of the one it makes); a failure is logged, gives None."""
        if not sung_lines(track.lyrics):
            return None
        try:
            return self._timing_pass(track, latents, phase if isinstance(phase, Phase) else phase(), row)
        except Exception:  # timing is an extra: it must never fail the song
            log.exception("lyric timing failed", extra={"seed": track.seed})
            return None

    @torch.no_grad()
    def lyric_attention(
        self, track: Track, latents: np.ndarray, t: float | None = None
    ) -> tuple[dict[int, torch.Tensor], LyricTokens]:
        """The timing pass's attention for a song made from ``track``, given its latents [frames, 64].

        Returns:
            ({layer: [heads, lyric tokens, patches]} of the layers ``heads_of`` reads, in the DiT's
            dtype and device; the lyric tokens). ``t`` is the re-noising time: 1/steps (default, upstream's
            ``dit_score`` and timing) or 1.0 (pure noise: upstream's ``lm_score``).
        """
        track, kept = self._stored(track, latents)
        return self._attention(track, kept, self._own_phase(track, kept.shape[0]), 0, t)

    def _stored(self, track: Track, latents: np.ndarray) -> tuple[Track, torch.Tensor]:
        """A stored song's track as a whole song of its own (no edit), and its latents on the device."""
        track = replace(track, span=None, base_latents=None, base_audio=None)
        return track, torch.as_tensor(np.asarray(latents), device=self.device, dtype=self.dtype)

    def _own_phase(self, track: Track, length: int) -> Phase:
        """The condition ``track`` is sampled with first (its codes or source if it has them), encoded alone."""
        return self._phases([track], [length], [self._hints(track, length)])[0]

    def lyric_scores(self, track: Track, latents: np.ndarray) -> tuple[float, float] | None:
        """Upstream's ``get_lyric_score``: (lm_score at t = 1, dit_score at t = 1/steps); None without sung lyrics."""
        if not sung_lines(track.lyrics):
            return None
        heads = heads_of(self.dit.decoder)
        scores = []
        for t in (1.0, None):
            attention, tokens = self.lyric_attention(track, latents, t)
            pieces = [self.text.tokenizer.decode([token], skip_special_tokens=False) for token in tokens.ids]
            scores.append(lyric_score(attention, pieces, heads))
        return scores[0], scores[1]

    def _attention(
        self, track: Track, latents: torch.Tensor, phase: Phase, row: int, t: float | None = None
    ) -> tuple[dict[int, torch.Tensor], LyricTokens]:
        """Row ``row`` of ``phase``: re-noise ``latents`` [frames, 64] to ``t`` and record the chosen layers."""
        tokens = lyric_tokens(self.text.tokenizer, _lyrics(track), track.language or "unknown")
        t = 1.0 / len(self.timesteps) if t is None else t  # upstream: 1 / inference_steps
        frames = latents.shape[0]
        context = phase.context[row : row + 1, :frames]
        cross = own_cross(phase.cross, row, phase.encoder_mask)
        layers = list(heads_of(self.dit.decoder))
        return lyric_attention(self.dit.decoder, renoise(latents[None], t), t, context, cross, tokens, layers), tokens

    def _timing_pass(self, track: Track, latents: torch.Tensor, phase: Phase, row: int) -> LyricTiming | None:
        attention, tokens = self._attention(track, latents, phase, row)
        dit_s = latents.shape[0] / FRAMES_PER_SECOND
        song_s = self._own_frames(track) * self.vae.hop / self.vae.sample_rate
        heads = heads_of(self.dit.decoder)
        return timing(attention, tokens, heads, dit_s, song_s, decoder_of(self.text.tokenizer))

    def _spliced(self, track: Track, song: Song) -> Song:
        """An edited track's new span in the base song's own audio (decoded from its kept latents)."""
        if track.span is None or isinstance(song, GenerationError):
            return song
        base: Song | None = track.base_audio
        if track.base_latents is not None and not track.base_from_audio:
            kept = torch.as_tensor(track.base_latents, device=self.device, dtype=self.dtype)
            whole = replace(
                track,
                span=None,
                source_audio=None,
                metas=replace(track.metas, duration_s=len(kept) / FRAMES_PER_SECOND),
            )
            base = self._decode([whole], [kept], lambda _name, _pct: None)[0]
        if isinstance(base, GenerationError):
            return base
        assert base is not None
        return edit.splice_audio(track, song, base, self.vae.sample_rate)

    @torch.no_grad()
    def source_codes(self, source_audio: np.ndarray, seed: int) -> list[int]:
        """The 5 Hz FSQ codes of an upload (VAE encode, then the DiT's tokenizer): what the LM reads."""
        self._choose_kernels()
        audio = torch.from_numpy(np.ascontiguousarray(source_audio, dtype=np.float32)).T
        src = self.vae.encode(audio, torch.Generator().manual_seed(seed)).to(self.device, self.dtype)
        ones = torch.ones(1, src.shape[0], dtype=self.dtype, device=self.device)
        _, indices, _ = self.dit.tokenize(src[None], self.silence, ones)
        return [int(code) for code in indices[0, :, 0].tolist()]

    # -- lengths, hints and noise ---------------------------------------------------------------

    def _length(self, track: Track) -> int:
        """Latent frames to generate: the track's own, at least upstream's floor (a cover of a short note)."""
        return max(MIN_FRAMES, self._own_frames(track))

    def _own_frames(self, track: Track) -> int:
        """The track's own latent frames: the source's length for a cover, else the requested duration."""
        frames = round(track.metas.duration_s * FRAMES_PER_SECOND)
        if track.source_audio is not None:
            source_frames = -(-track.source_audio.shape[0] // self.vae.hop)
            frames = min(frames, source_frames) if frames > 0 else source_frames
        return max(1, min(frames, self.silence.shape[1]))

    def _hints(self, track: Track, length: int) -> torch.Tensor | None:
        """25 Hz context hints [length, 64] from the source audio or the codes, or None."""
        if track.audio_codes is not None:
            codes = torch.tensor([list(track.audio_codes)], dtype=torch.int64, device=self.device)
            hints = self.dit.codes_to_hints(codes.clamp(0, self.dit.tokenizer.quantizer.codebook_size - 1))[0]
        elif track.source_audio is not None:
            audio = torch.from_numpy(np.ascontiguousarray(track.source_audio, dtype=np.float32)).T
            generator = torch.Generator().manual_seed(track.seed)
            src = self.vae.encode(audio, generator)[:length].to(self.device, self.dtype)
            src = torch.cat([src, self.silence[0, : length - src.shape[0]]])
            ones = torch.ones(1, length, dtype=self.dtype, device=self.device)
            hints = self.dit.detokenize(self.dit.tokenize(src[None], self.silence, ones)[0])[0]
        else:
            return None
        # Codes may cover less than the duration: the rest follows silence, like a text2music track.
        return torch.cat([hints[:length], self.silence[0, : max(0, length - hints.shape[0])]])

    def _noise(self, tracks: Sequence[Track], lengths: list[int]) -> torch.Tensor:
        """One CPU generator per track, drawn at the track's own length, then zero-padded."""
        longest = max(lengths)
        rows = []
        for track, n in zip(tracks, lengths, strict=True):
            gen = torch.Generator().manual_seed(track.seed)
            row = torch.randn(1, n, self.silence.shape[-1], generator=gen)
            rows.append(F.pad(row, (0, 0, 0, longest - n)))
        return torch.cat(rows).to(self.device, self.dtype)

    # -- conditions -------------------------------------------------------------------------------

    def _phases(self, tracks: Sequence[Track], lengths: list[int], hints: list[torch.Tensor | None]) -> list[Phase]:
        """Phase 0 follows the source/codes for guided tracks; phase 1 is the caption alone."""
        plain = self._condition(tracks, lengths, [None] * len(tracks))
        if not any(t.guided for t in tracks):
            return _unmasked_when_full([plain])
        guided = self._condition(tracks, lengths, hints)
        width = max(guided.encoder_mask.shape[1], plain.encoder_mask.shape[1])  # type: ignore[union-attr]
        return _unmasked_when_full([_pad_phase(guided, width), _pad_phase(plain, width)])

    def _condition(self, tracks: Sequence[Track], lengths: list[int], hints: list[torch.Tensor | None]) -> Phase:
        """Encode caption, lyrics and the silence timbre reference; build the context latents."""
        captions = [
            caption_prompt(
                edit.REPAINT_INSTRUCTION
                if t.span is not None
                else COVER_INSTRUCTION
                if h is not None
                else TEXT2MUSIC_INSTRUCTION,
                t.caption,
                t.metas,
            )
            for t, h in zip(tracks, hints, strict=True)
        ]
        lyrics = [lyrics_prompt(_lyrics(t), t.language or "unknown") for t in tracks]
        text, text_mask = self.text.captions(captions)
        lyric, lyric_mask = self.text.lyrics(lyrics)
        refs = edit.references(self.vae, self.silence, tracks, self.dit.config.timbre_fix_frame)
        order = torch.arange(len(tracks), device=self.device)
        states, mask = self.dit.encoder(text.to(self.dtype), text_mask, lyric.to(self.dtype), lyric_mask, refs, order)
        context = self._context(lengths, hints)
        edit.edit_context(context, tracks, lengths, self.silence)
        return Phase(self.dit.decoder.cross_kv(states), context, mask)

    def _context(self, lengths: list[int], hints: list[torch.Tensor | None]) -> torch.Tensor:
        """[B, T, 128]: source (hints, or silence) | chunk mask of ones; zero past each track's end."""
        longest, channels = max(lengths), self.silence.shape[-1]
        context = torch.zeros(len(lengths), longest, 2 * channels, dtype=self.dtype, device=self.device)
        for i, (n, h) in enumerate(zip(lengths, hints, strict=True)):
            context[i, :n, :channels] = self.silence[0, :n] if h is None else h
            context[i, :n, channels:] = 1.0
        return context

    # -- decoding ---------------------------------------------------------------------------------

    def _decode(self, tracks: Sequence[Track], latents: list[torch.Tensor], report: Stage) -> list[Song]:
        """Check each track's latents, decode them tile by tile, cut each to its own length, tame its peak.

        Exact: each track's tiles in calls of their own. Batched: equal-width tiles of all tracks share calls.
        """
        songs: list[Song] = [GenerationError(INVALID_LATENTS) for _ in tracks]
        valid = [i for i, z in enumerate(latents) if bool(torch.isfinite(z).all())]
        groups = [[i] for i in valid] if self.exact else [valid] if valid else []
        for group in groups:
            waves = self.vae.decode_many([latents[i].T for i in group], on_device=True)
            for i, wave in zip(group, waves, strict=True):
                songs[i] = self._finish(wave[:, : self._own_frames(tracks[i]) * self.vae.hop])
        report("decoding", 100.0)
        return songs

    def _finish(self, wave: torch.Tensor) -> Song:
        """[2, samples] on the device → [samples, 2] on the CPU, divided by its peak when that is over 1."""
        peak = float(wave.abs().max())
        if not np.isfinite(peak):
            return GenerationError(INVALID_AUDIO)
        if peak > 1.0:
            wave = wave / peak
        return wave.T.contiguous().cpu().numpy()


def _lyrics(track: Track) -> str:
    """The lyric prompt's text: a song without lyrics is instrumental; a cover without any keeps its vocals.

    Upstream's cover (no LM) formats empty lyrics as they are; "[Instrumental]" would ask for no voice.
    """
    if track.lyrics:
        return track.lyrics
    return "" if track.source_audio is not None and not track.instrumental else INSTRUMENTAL_LYRICS


class _CompiledOrEager:
    """The decoder with compiled layers, falling back to its eager layers for good if compiling fails."""

    def __init__(self, decoder: DiTDecoder) -> None:
        self.decoder = decoder

    def __call__(self, *args: object, **kwargs: object) -> torch.Tensor:
        if self.decoder.layer_calls is not None:
            try:
                return self.decoder(*args, **kwargs)  # type: ignore[no-any-return]
            except Exception as error:  # noqa: BLE001 - no compiler on this machine: eager is correct
                log.warning("torch.compile of the DiT failed; running it eagerly: %s", error)
                self.decoder.layer_calls = None
        return self.decoder(*args, **kwargs)  # type: ignore[no-any-return]


def _frame_mask(lengths: list[int], device: torch.device) -> torch.Tensor | None:
    """[B, T] valid frames; None when every track is as long as the longest (the mask would be all ones).

    Without a mask the full-attention layers need no bias, which lets fused (flash) attention run.
    """
    if len(set(lengths)) == 1:
        return None
    positions = torch.arange(max(lengths), device=device)
    return positions[None, :] < torch.tensor(lengths, device=device)[:, None]


def _pad_phase(phase: Phase, width: int) -> Phase:
    """Pad a phase's cross K/V and mask to ``width`` encoder positions (padding is masked out)."""
    extra = width - phase.cross[0][0].shape[2]
    if extra == 0:
        return phase
    cross = [(F.pad(k, (0, 0, 0, extra)), F.pad(v, (0, 0, 0, extra))) for k, v in phase.cross]
    mask = F.pad(phase.encoder_mask, (0, extra), value=False)  # type: ignore[arg-type]
    return Phase(cross, phase.context, mask)


def _unmasked_when_full(phases: list[Phase]) -> list[Phase]:
    """Drop the encoder masks when no phase masks anything (a zero bias costs a kernel and blocks flash)."""
    if all(p.encoder_mask is None or bool(p.encoder_mask.all()) for p in phases):
        return [Phase(p.cross, p.context, None) for p in phases]
    return phases
