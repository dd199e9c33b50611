"""`run_audit`: stream an export through the checker, in parallel, resumably, into the audit folder.

Order of work, and why:
1. Notes are read in the source's stable order and sent in chunks to the workers (notecheck.audit.
   workers: one NoteChecker per process, built once). At most a few chunks are in flight, so memory
   stays flat for any export size.
2. A worker records each note of its chunk in the history database and commits before handing the
   chunk back; the main process then appends it (fsynced) to results.jsonl, in source order. So every
   note in results.jsonl is in the history, and `--resume` skips exactly the notes in results.jsonl:
   no gap and no duplicate in either, whatever moment a kill -9 hits.
3. After the last note a final pass adds the cross-encounter findings (they need every encounter),
   rewrites results.jsonl and findings.csv atomically, then summary.json and report.html.
Because results.jsonl is in source order and a resumed run continues where the journal stops, a resumed
run ends with the same results.jsonl and findings.csv as an uninterrupted one.

Nothing here prints note text: stderr gets counts, note ids and the engine's own error messages.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from ..patterns_path import patterns_dir
from . import outputs
from .sources import Source, SourceOptions, open_source
from ..profiles import load_profile
from .workers import InProcess, Item, Pool, check_fallback, check_task, finalize_fallback, finalize_task, item_of

CHUNK = 32                 # NoteChecker.check_many's batch: nlp.pipe works on 32 at a time
MAX_ERRORS_SHOWN = 10


@dataclass
class AuditSummary:
    out_dir: Path
    notes_read: int
    notes_written: int
    notes_ok: int
    notes_error: int
    notes_complete: int
    resumed: int                     # notes already in results.jsonl when a --resume run started
    summary: dict = field(default_factory=dict)
    report_error: str | None = None

    @property
    def read_equals_written(self) -> bool:
        return self.notes_read == self.notes_written

    @property
    def exit_status(self) -> int:
        """0 every note complete and written; 1 otherwise (incomplete, errored, or outputs incomplete)."""
        all_good = (self.read_equals_written and self.notes_complete == self.notes_read
                    and self.report_error is None)
        return 0 if all_good else 1


class AuditSetupError(ValueError):
    """The audit cannot start as asked (e.g. the history database cannot be opened): exit status 2."""


def run_audit(source_path: Path, out_dir: Path, *, options: SourceOptions, jobs: int | None = None,
              resume: bool = False, db_path: Path | None = None, quiet: bool = False,
              progress: bool | None = None, err: TextIO | None = None,
              profile: str | None = None) -> AuditSummary:
    """Audit every note of `source_path` into `out_dir`. Raises SourceError / AuditSetupError before
    writing anything when the source, the payer profile or the history database cannot be used, and
    KeyboardInterrupt after saving what was done (`resume=True` continues it). `profile`: a payer
    profile id or path (default Medicare), for every per-note and cross-encounter rule."""
    from .history import History   # imported late: only a run needs SQLite

    err = err or sys.stderr
    source = open_source(Path(source_path), options)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = max(1, jobs or os.cpu_count() or 1)
    db_path = Path(db_path) if db_path else out_dir / "history.sqlite"
    print(source.describe(), file=err)

    results_path = out_dir / outputs.RESULTS
    # Opened here, before any worker, so the schema exists before several processes connect.
    try:
        profile_data = load_profile(profile)
    except ValueError as exc:
        raise AuditSetupError(str(exc)) from None
    history = _open_history(History, db_path, profile_data)
    done: set[str] = set()
    if resume:
        done, dropped = outputs.resume_state(results_path)
        if dropped:
            print(f"notecheck: resume: dropped {dropped} incomplete result line(s); those notes are redone", file=err)
        print(f"notecheck: resume: {len(done)} notes already done in {results_path}", file=err)
    elif results_path.exists():
        print(f"notecheck: replacing the results in {out_dir} (use --resume to continue them instead)", file=err)

    show_progress = (not quiet and err.isatty()) if progress is None else progress
    reader = _Reader(source, done)
    folder = str(patterns_dir())
    engine = (InProcess(folder, str(db_path), history, profile) if jobs == 1
              else Pool(jobs, folder, str(db_path), profile))
    try:
        errors_shown = _check_all(engine, reader, results_path, resume, quiet, show_progress, err)
        summary = _final_pass(engine, out_dir, reader, source)
    except BaseException as exc:
        engine.close(cancel=True)
        history.close()
        if not isinstance(exc, Exception) or isinstance(exc, RuntimeError):
            print(f"notecheck: stopped after {reader.read} notes read; results so far are saved in "
                  f"{results_path}: run again with --resume to continue", file=err)
        raise
    engine.close()
    history.close()
    report_error = _write_report(out_dir, summary, source)
    result = AuditSummary(out_dir=out_dir, notes_read=reader.read, notes_written=summary["notes_written"],
                          notes_ok=summary["notes_ok"], notes_error=summary["notes_error"],
                          notes_complete=summary["notes_complete"], resumed=reader.skipped,
                          summary=summary, report_error=report_error)
    _print_totals(result, err, errors_shown)
    return result


def _open_history(history_class, path: Path, profile: dict):
    try:
        return history_class(path, profile)
    except (sqlite3.Error, ValueError, OSError) as exc:
        detail = str(exc) if isinstance(exc, ValueError) else type(exc).__name__
        raise AuditSetupError(f"history database {path}: cannot be used ({detail})") from None


def _check_all(engine, reader: "_Reader", results_path: Path, resume: bool, quiet: bool,
               show_progress: bool, err: TextIO) -> int:
    journal = outputs.ResultsJournal(results_path, fresh=not resume)
    bar = _progress_bar(reader.source, show_progress, err)
    if bar is not None:
        reader.on_skip = bar.update
    errors_shown = 0
    try:
        for _items, _ctx, lines in engine.map(check_task, reader.chunks(), check_fallback):
            journal.append(line for line, _, _ in lines)
            for _, status, error in lines:
                if status != "ok" and errors_shown < MAX_ERRORS_SHOWN and not quiet:
                    errors_shown += 1
                    message = f"notecheck: error: {error}"
                    if bar is not None:
                        bar.write(message, file=err)   # above the bar, not through it
                    else:
                        print(message, file=err)
            if bar is not None:
                bar.update(len(lines))
    finally:
        journal.close()
        if bar is not None:
            bar.close()
    if show_progress:
        print("notecheck: adding cross-encounter findings; writing findings.csv, summary.json, report.html",
              file=err)
    return errors_shown


class _Reader:
    """Reads the source once, skipping notes already done, and remembers every id it saw."""

    def __init__(self, source: Source, done: set[str]) -> None:
        self.source, self.done = source, done
        self.seen: set[str] = set()
        self.read = self.skipped = 0
        self.on_skip = None

    def chunks(self) -> Iterator[tuple[list[Item], None]]:
        items: list[Item] = []
        for note in self.source:
            self.read += 1
            self.seen.add(note.note_id)
            if note.note_id in self.done:
                self.skipped += 1
                if self.on_skip is not None:
                    self.on_skip(1)
                continue
            items.append(item_of(note))
            if len(items) >= CHUNK:
                yield items, None
                items = []
        if items:
            yield items, None


def _final_pass(engine, out_dir: Path, reader: _Reader, source: Source) -> dict:
    """Add cross-encounter findings, recompute completeness, derive findings.csv and summary.json."""
    results_path = out_dir / outputs.RESULTS
    builder = outputs.SummaryBuilder({"path": str(source.path), "format": source.format,
                                      "describe": source.describe()})
    rewritten = outputs.AtomicText(results_path)
    findings = outputs.FindingsCsv(out_dir / outputs.FINDINGS)
    stale = [0]

    def chunks() -> Iterator[tuple[list[str], None]]:
        batch: list[str] = []
        with open(results_path, encoding="utf-8") as fh:
            for raw in fh:
                if outputs.line_note_id(raw) not in reader.seen:
                    stale[0] += 1   # a resumed folder whose export lost notes: not this audit's
                    continue
                batch.append(raw)
                if len(batch) >= CHUNK:
                    yield batch, None
                    batch = []
        if batch:
            yield batch, None

    try:
        for _raws, _ctx, done in engine.map(finalize_task, chunks(), finalize_fallback):
            for line, rows, facts in done:
                rewritten.fh.write(line)
                findings.add_rows(rows)
                builder.add_facts(facts)
    except BaseException:
        rewritten.abort()
        findings.abort()
        raise
    rewritten.commit()
    findings.commit()
    summary = builder.to_dict(reader.read)
    summary["notes_resumed"] = reader.skipped
    summary["stale_results_dropped"] = stale[0]
    outputs.write_json_atomic(out_dir / outputs.SUMMARY, summary)
    return summary


def _write_report(out_dir: Path, summary: dict, source: Source) -> str | None:
    try:
        from .report import write_report

        write_report(out_dir / outputs.REPORT, summary, _with_text(out_dir / outputs.RESULTS, source))
    except Exception as exc:  # noqa: BLE001 - the other outputs are complete; say so and go on
        return f"report.html could not be written ({type(exc).__name__})"
    return None


def _with_text(results_path: Path, source: Source) -> Iterator[tuple[dict, str | None]]:
    # results.jsonl is in source order, so one more pass over the source pairs each line with its text
    # without holding the export in memory.
    notes = iter(source)
    for line in outputs.iter_results(results_path):
        text = None
        for note in notes:
            if note.note_id == line.get("note_id"):
                text = note.text
                break
        yield line, text


def _progress_bar(source: Source, show: bool, err: TextIO):
    if not show:
        return None
    from tqdm import tqdm

    return tqdm(total=_estimate_total(source), unit="note", file=err, dynamic_ncols=True, smoothing=0.1)


def _estimate_total(source: Source) -> int | None:
    """A cheap count for the ETA (rows with embedded newlines make it an over-estimate)."""
    path = Path(source.path)
    try:
        if source.format == "folder":
            return sum(1 for _ in path.rglob("*.txt"))
        if source.format == "fhir_bundle":
            return None
        lines = 0
        with open(path, "rb") as fh:
            while block := fh.read(1 << 20):
                lines += block.count(b"\n")
        return max(lines - (1 if source.format == "csv" else 0), 0)
    except OSError:
        return None


def _print_totals(result: AuditSummary, err: TextIO, errors_shown: int) -> None:
    s = result.summary
    if s["notes_error"] > errors_shown and errors_shown:
        print(f"notecheck: ... {s['notes_error'] - errors_shown} more note errors in findings.csv", file=err)
    print(f"read {result.notes_read} notes: ok {result.notes_ok}, error {result.notes_error}; "
          f"written {result.notes_written} (read == written: {'yes' if result.read_equals_written else 'no'})",
          file=err)
    rate = s.get("completeness_rate")
    billed = s["billed"]
    out_of_family = sum(s.get("by_out_of_family", {}).values())
    print(f"complete {result.notes_complete}, incomplete {s['notes_incomplete']}"
          + (f" (of which {out_of_family} out of family)" if out_of_family else "")
          + (f" (completeness {rate:.1%})" if rate is not None else "")
          + (f"; billed codes: {billed['supported']} supported, {billed['mismatch']} mismatched"
             if billed["notes_with_billed"] else ""), file=err)
    if result.report_error:
        print(f"notecheck: error: {result.report_error}", file=err)
    print(f"outputs in {result.out_dir}: results.jsonl, findings.csv, summary.json"
          + ("" if result.report_error else f"; open {result.out_dir / outputs.REPORT} in a browser"), file=err)
