"""The audit's per-note work and the processes that do it.

Everything per note that costs CPU runs here, in the workers, not in the main process: checking,
the billing comparison, serialising the results line, recording the note in the history database
(each worker has its own SQLite connection; WAL lets them take turns), and in the final pass adding
the cross-encounter findings and building the findings.csv rows. The main process only reads the
source and writes what comes back, so `--jobs 2` gets both cores instead of sharing them with a busy
coordinator.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import orjson

from ..record import NoteResult
from . import outputs

IN_FLIGHT_PER_JOB = 2      # enough to keep every worker busy while the main process writes
# A worker that dies on a note (segfault, OOM kill) breaks the pool; the chunk is retried one item at a
# time to find the culprit. Pools that keep breaking mean the workers cannot run at all.
MAX_CONSECUTIVE_BREAKS = 3

# (note_id, text or None, reading error or None, warnings, billed, audit meta)
Item = tuple[str, str | None, str | None, list[str], str | None, dict]

_state: dict = {}


def init_state(folder: str, db_path: str, history=None, profile: str | None = None) -> None:
    """Build this process's checker and history connection (once per process), for one payer profile."""
    if _state.get("folder") != folder or _state.get("profile") != profile:
        from ..engine import NoteChecker   # the 1.5 s pipeline build

        _state.update(folder=folder, profile=profile, checker=NoteChecker(folder, profile=profile))
    if history is not None:
        _state["history"] = history
    elif _state.get("db_path") != db_path:
        from ..profiles import load_profile
        from .history import History

        _state["history"] = History(Path(db_path), load_profile(profile))
    _state["db_path"] = db_path


def _init_worker(folder: str, db_path: str, parent: int, profile: str | None) -> None:
    # Ctrl-C reaches the whole process group; only the main process decides what to do about it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    init_state(folder, db_path, profile=profile)


def _exit_with_parent(parent: int) -> None:
    # After a kill -9 of the main process nobody tells the workers to stop: they would wait on their
    # task queue forever.
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


# ----------------------------------------------------------------------------- tasks

def check_task(items: list[Item]) -> list[tuple[str, str, str | None]]:
    """Check a chunk in order: (results line, status, error) per item; never raises for one bad note.

    Each note is recorded in the history before this returns, so the journal the main process appends
    these lines to never lists a note the history lacks."""
    checker, history = _state["checker"], _state["history"]
    out = []
    for (_note_id, text, _error, _warnings, _billed, meta), line in checked_lines(checker, items):
        try:
            # Error notes too: a note id that was fine in an earlier audit and is unreadable now must
            # stop counting as a session.
            history.record(line, text, meta.get("patient_id"), meta.get("service_date"))
        except Exception as exc:  # noqa: BLE001 - keep the note's result; say what is missing
            line["warnings"].append(f"not recorded in the history database ({type(exc).__name__})")
        out.append((outputs.dump_line(line), line["status"], line.get("error")))
    history.commit()
    return out


def item_of(note) -> Item:
    """The work item of a SourceNote (notecheck.audit._common)."""
    meta = {"patient_id": note.patient_id, "service_date": note.service_date, "billed": note.billed,
            "locator": note.locator}
    return (note.note_id, note.text if note.error is None else None, note.error, list(note.warnings), note.billed,
            meta)


def checked_lines(checker, items: list[Item]) -> Iterator[tuple[Item, dict]]:
    """(item, results line) for each item in order, the line without its cross-encounter part yet; one
    bad note never stops the others. Shared by the local audit and the Spark engine."""
    readable = [(item[0], item[1], item[4]) for item in items if item[2] is None]
    try:
        checked = list(checker.check_many(readable))
    except Exception:  # noqa: BLE001 - retry one at a time so a failure stays with its note
        checked = [_check_one(checker, note_id, text, billed) for note_id, text, billed in readable]
    by_order = iter(checked)
    for item in items:
        note_id, _text, error, warnings, billed, meta = item
        if error is not None:
            result = NoteResult(note_id=note_id, status="error", error=error, warnings=warnings)
        else:
            result = next(by_order)
            if warnings:
                result = result.model_copy(update={"warnings": [*warnings, *result.warnings]})
        yield item, result_line(result, billed, meta)


def finalize_task(raws: list[str]) -> list[tuple[str, str, dict]]:
    """Final pass over results lines: cross-encounter findings, completeness, CSV rows, summary facts."""
    history = _state["history"]
    out = []
    for raw in raws:
        line = orjson.loads(raw)
        audit = line.setdefault("audit", {})
        audit["history_findings"] = history.findings_for(line["note_id"]) if line.get("status") == "ok" else []
        audit["complete"] = outputs.is_complete(line)
        out.append((outputs.dump_line(line), outputs.csv_rows(line), outputs.summary_facts(line)))
    return out


def finalize_fallback(raws: list[str], reason: str) -> list[tuple[str, str, dict]]:
    # Without history findings rather than without the note: the line is kept as it was.
    out = []
    for raw in raws:
        line = orjson.loads(raw)
        line.setdefault("warnings", []).append(f"cross-encounter findings not computed ({reason})")
        out.append((outputs.dump_line(line), outputs.csv_rows(line), outputs.summary_facts(line)))
    return out


def check_fallback(items: list[Item], reason: str) -> list[tuple[str, str, str | None]]:
    out = []
    for note_id, *_rest in items:
        meta = _rest[-1]
        result = NoteResult(note_id=note_id, status="error", error=f"note {note_id}: {reason}")
        line = result.model_dump(mode="json")
        line["audit"] = {**meta, "billing": None, "history_findings": [], "complete": False}
        out.append((outputs.dump_line(line), "error", line["error"]))
    return out


def _check_one(checker, note_id: str, text: str, billed: str | None) -> NoteResult:
    try:
        return checker.check(text, note_id, billed)
    except Exception as exc:  # noqa: BLE001
        return NoteResult(note_id=note_id, status="error",
                          error=f"note {note_id}: internal error while checking ({type(exc).__name__})")


def result_line(result: NoteResult, billed: str | None, meta: dict) -> dict:
    # The engine compared the claim (NoteResult.claim); a note that never reached it (unreadable input)
    # still says a claim was given and not checked.
    billing = (result.claim.model_dump(mode="json") if result.claim is not None
               else {"billed": billed, "status": "not_checked"} if billed and billed.strip() else None)
    line = result.model_dump(mode="json")
    # "audit" last, and history_findings/complete last in it: the contract's keys come first.
    line["audit"] = {**meta, "billing": billing, "history_findings": [], "complete": False}
    line["audit"]["complete"] = outputs.is_complete(line)
    return line


# ----------------------------------------------------------------------------- engines

Fallback = Callable[[list, str], list]


class InProcess:
    """--jobs 1: the same tasks, in this process."""

    def __init__(self, folder: str, db_path: str, history, profile: str | None = None) -> None:
        init_state(folder, db_path, history, profile)

    def map(self, task, chunks: Iterable[tuple[list, object]], fallback: Fallback) -> Iterator[tuple[list, object, list]]:
        for payload, ctx in chunks:
            try:
                yield payload, ctx, task(payload)
            except Exception as exc:  # noqa: BLE001
                yield payload, ctx, fallback(payload, f"internal error ({type(exc).__name__})")

    def close(self, cancel: bool = False) -> None:
        pass


class Pool:
    """Worker processes (spawn: a fresh interpreter, no forked spaCy or SQLite state); results come back
    in submission order with at most jobs * IN_FLIGHT_PER_JOB chunks in flight (flat memory)."""

    def __init__(self, jobs: int, folder: str, db_path: str, profile: str | None = None) -> None:
        self.jobs, self.folder, self.db_path, self.profile = jobs, folder, db_path, profile
        self.executor = self._start()

    def _start(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=self.jobs, mp_context=mp.get_context("spawn"),
                                   initializer=_init_worker, initargs=(self.folder, self.db_path, os.getpid(), self.profile))

    def _restart(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.executor = self._start()

    def map(self, task, chunks: Iterable[tuple[list, object]], fallback: Fallback) -> Iterator[tuple[list, object, list]]:
        pending: deque = deque()
        limit = self.jobs * IN_FLIGHT_PER_JOB
        for payload, ctx in chunks:
            pending.append((payload, ctx, self.executor.submit(task, payload)))
            while len(pending) >= limit:
                yield from self._collect(task, pending, fallback)
        while pending:
            yield from self._collect(task, pending, fallback)

    def _collect(self, task, pending: deque, fallback: Fallback):
        payload, ctx, future = pending.popleft()
        try:
            yield payload, ctx, future.result()
            return
        except BrokenProcessPool:
            pass
        except Exception as exc:  # noqa: BLE001 - e.g. a result that could not be sent back
            yield payload, ctx, fallback(payload, f"internal error ({type(exc).__name__})")
            return
        # Every queued chunk died with the pool: redo them one item at a time on a fresh pool.
        retry = [(payload, ctx)] + [(p, c) for p, c, _ in pending]
        pending.clear()
        self._restart()
        breaks = 0
        for payload, ctx in retry:
            results = []
            for item in payload:
                try:
                    results += self.executor.submit(task, [item]).result()
                    breaks = 0
                except BrokenProcessPool:
                    breaks += 1
                    if breaks >= MAX_CONSECUTIVE_BREAKS:
                        raise RuntimeError("worker processes keep dying; no further note can be checked") from None
                    results += fallback([item], "the worker process handling this note died")
                    self._restart()
            yield payload, ctx, results

    def close(self, cancel: bool = False) -> None:
        self.executor.shutdown(wait=not cancel, cancel_futures=cancel)
