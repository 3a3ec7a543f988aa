"""The set-based run engine behind clean-ups, scheduled sweeps, bulk changes, undos and the daily dunning run.

    starting    start and read runs: selections, chunks, locks, queueing, progress, resume
    processing  the RQ job's side: claim chunks (two at a time on PostgreSQL) until the run is done
    chunk       one chunk of a status change: one transaction, set-based (one statement on PostgreSQL)
    emails      the emails a chunk queues, filled in by SQL from one rendering
    controls    pause and cancel (compare-and-set on the status; workers stop between chunks)
    pace        progress in accounts: processed out of the total, the rate, the time left
    inline      a run its caller makes at once (a small bulk change), its audit events tagged with its id

A kind of run with chunks of its own (the dunning run) registers its chunk function with
register_chunk_processor; the engine knows nothing of the processes built on it.
"""
from portal.domain.runs.chunk import ACTIONS, BY_RULE, run_label  # noqa: F401
from portal.domain.runs.controls import CANCELLABLE, PAUSABLE, cancel_run, pause_run  # noqa: F401
from portal.domain.runs.inline import events_of, finish_inline_run, is_inline, start_inline_run  # noqa: F401
from portal.domain.runs.processing import process_chunk, process_run, sweep_connections  # noqa: F401
from portal.domain.runs.starting import (  # noqa: F401
    ACTIVE_STATUSES, EXCLUSIVE_KINDS, IN_PROGRESS, KINDS, LOCK, RESUMABLE, PeriodAlreadyRun, RunInProgress,
    RunNotFound, SELECTIONS, chunk_processor, enqueue_run, enqueue_unfinished, get_run, is_stalled, lock_for,
    progress, register_chunk_processor, register_selection, resume_run, running_exclusive_run, selection_clause,
    start_run, validate_run_reason, wait_for_run,
)
