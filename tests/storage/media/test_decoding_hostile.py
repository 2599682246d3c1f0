"""Hostile uploads: each is refused with a sentence or decoded, in a child process whose peak memory stays small.

The files are the issue's (a 384 kHz FLAC of 300 s of a constant, a 655,350 Hz FLAC, WAV headers
claiming 10 MHz and 2³¹−1 Hz, a WAV whose header lies about its size) and a long file at the highest
rate accepted. Both processes' paths run: the bot's probe and the engine's decode. Memory is the
child's own peak (VmHWM); no timing is asserted (the child only has a generous timeout).
"""

import importlib.util

import pytest

from tests.helpers import REPO

PEAK_MB = 500
REFUSED = {
    "flac_384khz_constant": "384,000 Hz",
    "flac_655350hz_constant": "655,350 Hz",
    "wav_header_10mhz": "10,000,000 Hz",
    "wav_header_2147483647hz": "2,147,483,647 Hz",
}
DECODED = ("wav_header_lies_about_size", "flac_192khz_constant")


def load_bench():
    spec = importlib.util.spec_from_file_location("hostile_audio", REPO / "bench" / "hostile_audio.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The hostile files, written once; the 655,350 Hz one is shorter (it is refused by its header alike)."""
    bench = load_bench()
    folder = tmp_path_factory.mktemp("hostile")
    builders = bench.hostile_files(300)
    builders["flac_655350hz_constant"] = lambda: bench.flac_constant(655_350, 60)
    builders["flac_192khz_constant"] = lambda: bench.flac_constant(192_000, 120)
    paths = {}
    for name, build in builders.items():
        paths[name] = folder / name
        paths[name].write_bytes(build())
    return bench, paths


@pytest.mark.parametrize("step", ["probe", "decode"])
@pytest.mark.parametrize("name", sorted(REFUSED))
def test_an_impossible_rate_is_refused_with_a_sentence_in_little_memory(files, name, step):
    bench, paths = files
    result = bench.run_child(paths[name], step, timeout_s=300)
    assert result["outcome"] == "BadAudio", result
    sentence = result["sentence"]
    assert REFUSED[name] in sentence and "no recording uses" in sentence and sentence.endswith(".")
    assert result["peak_rss_mb"] < PEAK_MB


@pytest.mark.parametrize("step", ["probe", "decode"])
@pytest.mark.parametrize("name", DECODED)
def test_a_lying_header_or_a_long_high_rate_file_decodes_in_little_memory(files, name, step):
    bench, paths = files
    result = bench.run_child(paths[name], step, timeout_s=300)
    assert result["outcome"] == "decoded", result
    assert result["peak_rss_mb"] < PEAK_MB


def test_a_file_that_hides_its_length_is_refused_while_reading_in_little_memory(files):
    bench, paths = files
    for step in ("probe", "decode"):
        result = bench.run_child(paths["flac_hidden_length_over_limit"], step, timeout_s=300)
        assert result["outcome"] == "BadAudio" and "too long" in result["sentence"], result
        assert result["peak_rss_mb"] < PEAK_MB
