"""The worker scores the takes of best=N requests and stores each score with its track."""

from storage.contract.results import TakeScore
from storage.contract.types import SUCCEEDED
from storage.queue.library import Library
from tests.engine.test_worker import Scripted, silence_tracks, submit, worker

__all__ = ["worker"]


def test_sketch_takes_are_scored_and_the_score_stored(worker):
    take = submit(worker, duration=10.0, seed=5, best_of=2)
    plain = submit(worker, duration=10.0, seed=5)
    while worker.run_once():
        pass
    library = Library(worker.queue.engine)
    stored = library.get(take.id).score
    assert worker.queue.get(take.id).status == SUCCEEDED
    assert stored is not None and stored.best_of == 2 and not stored.chosen and stored.take is None
    assert set(stored.conditions) == {"bpm", "duration"} and 0.0 <= stored.total <= 1.0
    assert library.get(plain.id).score is None  # an ordinary song is not scored


class Scored(Scripted):
    def __init__(self, score):
        super().__init__(silence_tracks)
        self.score_of = score
        self.scored = []

    def score(self, request, track, progress):
        self.scored.append(request.job_id)
        return self.score_of(request)


def test_each_take_is_scored_alone_and_a_failed_score_keeps_its_song(worker):
    def score(request):
        if request.seed == 6:
            raise RuntimeError("the scorer broke")
        return TakeScore(total=request.seed / 10, best_of=request.spec.best_of)

    backend = Scored(score)
    worker.generator = backend
    first, second = submit(worker, seed=5, best_of=2), submit(worker, seed=6, best_of=2)
    worker.run_once()
    library = Library(worker.queue.engine)
    assert backend.scored == [first.id, second.id]
    assert library.get(first.id).score == TakeScore(total=0.5, best_of=2)
    assert worker.queue.get(second.id).status == SUCCEEDED and library.get(second.id).score is None
