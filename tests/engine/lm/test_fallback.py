"""A failing CUDA-graph capture or fast path costs speed, never a plan: graphs -> eager -> reference loop."""

import logging
from dataclasses import replace

import pytest

from engine.acestep.lm.fast import FastDecoder
from engine.acestep.lm.graphs import StepGraphs
from engine.acestep.lm.planner import PlanRequest

REQUESTS = [
    PlanRequest("lo-fi beat", seed=7, duration=10, bpm=84, keyscale="Eb major", lyrics="[Verse]\nla la la"),
    PlanRequest("a sad folk song about trains", seed=3, duration=10),
]


@pytest.fixture(scope="module")
def reference(tiny_planner):
    settings = replace(tiny_planner.settings, top_p=0.9, caption_max=12, genres_max=4, lyrics_max=12)
    planner = replace(tiny_planner, settings=settings, fast=None)
    return planner, planner.plan(REQUESTS)


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_a_failed_graph_capture_runs_the_steps_eagerly_with_one_log_line(reference, monkeypatch, caplog):
    planner, plans = reference
    fast = replace(planner)
    fast.use_fast_path(len_step=16)
    tried = []

    def capture_fails(self, fn, undo):
        tried.append(self)
        raise RuntimeError("operation not permitted when stream is capturing")

    monkeypatch.setattr(StepGraphs, "_capture", capture_fails)
    # Graphs are for CUDA only; switch every decoder's on as on a GPU, so that its first step tries to capture.
    for phase, guided in (("meta", False), ("codes", True)):
        fast.fast.decoder(phase, guided).graphs.enabled = True
    with caplog.at_level(logging.WARNING):
        assert fast.plan(REQUESTS) == plans
    assert len(tried) == 1  # the first failure switched the other decoder's graphs off too
    assert fast.fast is not None  # still the fast path, eagerly
    [line] = _warnings(caplog)
    assert "CUDA graph capture failed" in line and "operation not permitted when stream is capturing" in line


def test_a_failing_fast_path_falls_back_to_the_reference_loop_with_one_log_line(reference, monkeypatch, caplog):
    planner, plans = reference
    fast = replace(planner)
    fast.use_fast_path(len_step=16)
    steps = []

    def forward_fails(self, b, window):
        steps.append(b)
        if len(steps) == 3:  # mid-decode: the metadata jobs already hold tokens; the reference loop starts them again
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return real_forward(self, b, window)

    real_forward = FastDecoder._forward
    monkeypatch.setattr(FastDecoder, "_forward", forward_fails)
    with caplog.at_level(logging.WARNING):
        assert fast.plan(REQUESTS) == plans
        assert fast.fast is None and fast.plan(REQUESTS[:1]) == plans[:1]
    [line] = _warnings(caplog)
    assert "fast path failed" in line and "illegal memory access" in line
