import numpy as np
import pytest

from engine.sketch import NOTICE, SketchGenerator, parse_key
from storage.contract.results import ModelInfo, title_from_caption
from storage.contract.spec import Edit
from tests.helpers import track_request

RATE = 48_000


def request(**kwargs):
    values = {
        "job_id": 1,
        "kind": "song",
        "caption": "lo-fi rain at night",
        "lyrics": "",
        "instrumental": True,
        "duration_s": 10.0,
        "seed": 5,
    }
    values.update(kwargs)
    return track_request(**values)


def generate(**kwargs):
    calls = []
    [track] = SketchGenerator().generate([request(**kwargs)], lambda *args: calls.append(args))
    return track, calls


def test_deterministic_from_the_seed():
    a, _ = generate(seed=5)
    b, _ = generate(seed=5)
    c, _ = generate(seed=6)
    assert np.array_equal(a.audio, b.audio)
    assert not np.array_equal(a.audio, c.audio)


def test_duration_format_and_notice():
    track, calls = generate(duration_s=12.5)
    assert track.audio.shape == (int(12.5 * RATE), 2) and track.audio.dtype == np.float32
    assert np.abs(track.audio).max() <= 1.0 and np.abs(track.audio).max() > 0.05
    assert track.notice == NOTICE and "not ACE-Step" in track.notice
    assert track.model == ModelInfo(backend="sketch")
    assert calls[-1] == (1, "generating", 100.0)


@pytest.mark.parametrize("bpm", [70, 120])
def test_honours_bpm(bpm):
    track, _ = generate(bpm=bpm, duration_s=12.0)
    assert track.metadata.bpm == bpm
    # The kick drum repeats every beat: the envelope's autocorrelation peaks at 60/bpm seconds.
    envelope = np.abs(track.audio.mean(axis=1))[: 10 * RATE].reshape(-1, 480).mean(axis=1)  # 100 Hz frames
    envelope = envelope - envelope.mean()
    corr = np.correlate(envelope, envelope, mode="full")[envelope.size - 1 :]
    lags = np.arange(corr.size) / 100.0
    window = (lags > 0.3) & (lags < 1.0)
    best = lags[window][np.argmax(corr[window])]
    assert best == pytest.approx(60.0 / bpm, abs=0.03)


def test_honours_key():
    track, _ = generate(key="A minor", duration_s=10.0)
    assert track.metadata.key == "A minor"
    spectrum = np.abs(np.fft.rfft(track.audio.mean(axis=1)))
    freqs = np.fft.rfftfreq(track.audio.shape[0], 1 / RATE)
    band = (freqs > 100) & (freqs < 2000)
    pitch_classes = np.round(12 * np.log2(freqs[band] / 440.0)).astype(int) % 12  # 0 = A
    energy = np.bincount(pitch_classes, weights=spectrum[band] ** 2, minlength=12)
    a_minor = {0, 2, 3, 5, 7, 8, 10}  # A B C D E F G relative to A
    inside = sum(energy[pc] for pc in a_minor)
    assert inside / energy.sum() > 0.9


def test_cover_follows_the_source():
    source = (0.5 * np.sin(np.linspace(0, 2000, 10 * RATE))[:, None].repeat(2, 1)).astype(np.float32)
    near, _ = generate(kind="cover", source_audio=source, strength=0.9)
    far, _ = generate(kind="cover", source_audio=source, strength=0.1)
    assert np.corrcoef(near.audio[:, 0], source[:, 0])[0, 1] > np.corrcoef(far.audio[:, 0], source[:, 0])[0, 1]


def test_key_parsing_and_titles():
    assert parse_key("F# minor")[0] == 6 and parse_key("Bb major")[0] == 10 and parse_key("nonsense")[0] == 0
    # The sketch's titles are every backend's (`storage.contract.results.title_from_caption`).
    track, _ = generate(caption="lo-fi rain at night, with a cat!")
    assert track.title == title_from_caption("lo-fi rain at night, with a cat!") == "Lo-fi Rain At Night"
    assert generate(caption="!!!")[0].title == "Untitled"
    assert generate(caption="", kind="cover", source_audio=np.zeros((RATE, 2), np.float32))[0].title == "Cover"


def test_a_new_seed_keeps_bpm_and_key():
    """A re-roll (same caption, new seed) keeps bpm and key, as the README says; the arrangement changes."""
    first, _ = generate(seed=5)
    takes = [generate(seed=seed)[0] for seed in (6, 7, 8)]
    for take in takes:
        assert (take.metadata.bpm, take.metadata.key) == (first.metadata.bpm, first.metadata.key)
        assert not np.array_equal(take.audio, first.audio)
    other, _ = generate(caption="a brass band marching in the snow")
    assert (other.metadata.bpm, other.metadata.key) != (first.metadata.bpm, first.metadata.key)


def test_a_cover_with_new_lyrics_says_the_sketch_does_not_sing_them():
    source = (0.5 * np.sin(np.linspace(0, 2000, 4 * RATE))[:, None].repeat(2, 1)).astype(np.float32)
    words = "[Verse]\nla luna sobre el mar"
    sung, _ = generate(kind="cover", source_audio=source, lyrics=words, instrumental=False, language="es")
    assert sung.notice == NOTICE + " It sings no words: the cover's new lyrics are kept with it, not sung."
    assert (sung.lyrics, sung.metadata.language) == (words, "es")  # kept with the cover, for /lyrics
    plain, _ = generate(kind="cover", source_audio=source)
    assert plain.notice == NOTICE and np.array_equal(plain.audio, sung.audio)  # the words change no sample


def test_a_styled_job_fails_with_the_sentence_and_the_rest_is_made():
    from storage.styles import STYLES_NEED_ACESTEP

    styled = track_request(1, "song", "rain", duration_s=2, style="demo")
    plain = track_request(2, "song", "rain", duration_s=2)
    failed, made = SketchGenerator().generate([styled, plain], lambda *_: None)
    assert failed.error == STYLES_NEED_ACESTEP and failed.audio.shape == (0, 2)
    assert made.error is None and made.audio.shape[0] > 0


LYRICS = "[verse]\nthe morning train\nis running late\n\n[chorus]\nall aboard"


def test_a_song_with_lyrics_is_timed_on_beats_inside_the_song():
    track, _ = generate(lyrics=LYRICS, instrumental=False, duration_s=30.0, bpm=120)
    assert track.timing is not None
    lines = track.timing.lines
    assert [line.text for line in lines] == ["the morning train", "is running late", "all aboard"]
    starts = [line.start_s for line in lines]
    assert starts == sorted(starts) and starts[0] == 2.0  # one bar of intro at 120 bpm
    assert all(line.start_s < line.end_s <= 28.0 for line in lines)
    assert all((line.start_s / 0.5) == round(line.start_s / 0.5) for line in lines)  # on beats


def test_instrumental_songs_and_section_tags_alone_have_no_timing():
    assert generate()[0].timing is None
    assert generate(lyrics="[intro]\n\n[outro]", instrumental=False)[0].timing is None


def test_the_timing_is_where_the_sketch_hums():
    sung, _ = generate(lyrics=LYRICS, instrumental=False, duration_s=30.0, bpm=120)
    plain, _ = generate(lyrics="", duration_s=30.0, bpm=120)
    assert sung.timing is not None
    hummed = np.abs(sung.audio - plain.audio).mean(axis=1)
    inside = np.zeros(hummed.shape[0], bool)
    for line in sung.timing.lines:
        inside[round(line.start_s * RATE) : round(line.end_s * RATE)] = True
    assert hummed[inside].mean() > 0.02 and hummed[~inside].max() < 1e-6


def test_time_lyrics_finds_the_lines_where_generate_put_them():
    made, _ = generate(lyrics=LYRICS, instrumental=False, duration_s=30.0)
    again = SketchGenerator().time_lyrics(request(lyrics=LYRICS, instrumental=False, duration_s=30.0), lambda *a: None)
    assert again == made.timing
    assert SketchGenerator().time_lyrics(request(), lambda *a: None) is None


def test_an_extension_keeps_its_base_songs_lines_and_a_repaint_their_places():
    base, _ = generate(lyrics=LYRICS, instrumental=False, duration_s=20.0, bpm=120)
    extend = Edit(task="extend", song_id=1, start_s=20.0, end_s=30.0)
    extended, _ = generate(
        lyrics=LYRICS, instrumental=False, duration_s=30.0, bpm=120, edit=extend, base_audio=base.audio
    )
    repaint = Edit(task="repaint", song_id=1, start_s=5.0, end_s=9.0)
    repainted, _ = generate(
        lyrics=LYRICS, instrumental=False, duration_s=20.0, bpm=120, edit=repaint, base_audio=base.audio, seed=9
    )
    assert extended.timing == base.timing == repainted.timing
