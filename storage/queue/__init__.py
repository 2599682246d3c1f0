"""The job queue.

The statements that move jobs, their rows, fairness, the reaper, the delivery outbox, users and finished tracks.
"""
