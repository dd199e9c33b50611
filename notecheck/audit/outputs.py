"""The audit's files in --out: results.jsonl, findings.csv, summary.json.

results.jsonl is the journal of the run: one line per note, appended and fsynced a chunk at a time, so
a kill (Ctrl-C, kill -9, a crash) can at worst leave a torn last line, which `resume_state` drops. A
line is the core output contract (`NoteResult.model_dump(mode="json")`, billing findings appended to
`findings`) plus an "audit" key:

    {"patient_id": str|null, "service_date": "YYYY-MM-DD"|null, "billed": str|null, "locator": str,
     "billing": {"billed", "lines": [{"code", "modifiers"}], "billed_code", "supported", "supported_family",
                 "status": "supported"|"mismatch"|"unreadable"|"not_checked", "direction", "axes"} | null,
     "history_findings": [finding, ...],       # cross-encounter findings, filled in by the final pass
     "complete": bool}                         # ok, a 6232x code, and no missing `error` finding of any kind

findings.csv and summary.json are derived from results.jsonl by the final pass and replaced atomically
(write to a temporary file, fsync, os.replace): a reader never sees half of one.

summary.json keys (the report reads the same dict):
    notes_read, notes_written, read_equals_written, notes_ok, notes_error, notes_complete,
    notes_incomplete, completeness_rate (complete / read; errors and out-of-family notes are not complete),
    error_count (= notes_error), by_code {"62323": n}, by_out_of_family {"transforaminal": n},
    no_code (ok notes with neither), by_requirement_missing {"consent": n, "frequency_limit": n, ...}
    (notes with that finding missing, per-note + billing + cross-encounter), by_severity {"error": n,
    "warning": n} (missing findings), by_history_finding {"frequency_limit": n, ...},
    billed {"notes_with_billed", "supported", "mismatch", "unreadable", "not_checked",
            "by_direction": {"billed_higher": n, ...}},
    billed_mismatch_pairs [{"billed", "supported", "direction", "count"}] (most frequent first),
    errors_sample [first error messages, note ids only], source {"path", "format", "describe"},
    notes_resumed (already done when a --resume run started), stale_results_dropped.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

import orjson

RESULTS = "results.jsonl"
FINDINGS = "findings.csv"
SUMMARY = "summary.json"
REPORT = "report.html"
FINDINGS_COLUMNS = ("note_id", "patient_id", "service_date", "requirement_id", "status", "severity", "message")

_ID_PREFIX = '{"note_id":'
_ERRORS_SAMPLE = 20
# Spreadsheets run a cell that starts with one of these as a formula; ids and patient numbers come from
# the export, so they are neutralised rather than trusted.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def dump_line(line: dict) -> str:
    # orjson: ~6x faster than json.dumps on a 20 kB results line, and lines are written twice per note.
    return orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE).decode("utf-8")


def line_note_id(raw: str) -> str | None:
    """The note id of a results line without parsing the whole (often 10 kB) line."""
    if raw.startswith(_ID_PREFIX):
        try:
            value, _ = json.JSONDecoder().raw_decode(raw, len(_ID_PREFIX))
            return value if isinstance(value, str) else None
        except ValueError:
            return None
    try:
        return json.loads(raw).get("note_id")
    except (ValueError, AttributeError):
        return None


class ResultsJournal:
    """Append-only results.jsonl: each `append` is durable before it returns."""

    def __init__(self, path: Path, fresh: bool) -> None:
        self.path = path
        self._fh = open(path, "w" if fresh else "a", encoding="utf-8", newline="\n")

    def append(self, lines: Iterable[str]) -> None:
        """Lines as `dump_line` made them (newline-terminated)."""
        self._fh.write("".join(lines))
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()


def resume_state(path: Path) -> tuple[set[str], int]:
    """Note ids already in results.jsonl, after cutting off a torn tail; and how many lines were dropped.

    Only complete lines (newline-terminated, valid JSON with a note id) count as done. The file is cut at
    the end of the last good line so that appending continues on a clean line boundary; a bad line in the
    middle (never written by this code, but possible after a disk fault) is removed by rewriting the file.
    """
    done: set[str] = set()
    if not path.exists():
        return done, 0
    dropped = good_end = 0
    seen_bad = need_rewrite = False
    with open(path, "rb") as fh:
        offset = 0
        for raw in fh:
            offset += len(raw)
            note_id = _complete_line_id(raw)
            if note_id is None or note_id in done:
                seen_bad = True
                dropped += 1
                continue
            if seen_bad:
                need_rewrite = True   # a good line after a bad one: cutting the tail is not enough
                break
            done.add(note_id)
            good_end = offset
    if need_rewrite:
        return _rewrite_good_lines(path)
    if good_end < path.stat().st_size:
        with open(path, "r+b") as fh:
            fh.truncate(good_end)
            os.fsync(fh.fileno())
    return done, dropped


def _complete_line_id(raw: bytes) -> str | None:
    if not raw.endswith(b"\n"):
        return None
    try:
        text = raw.decode("utf-8")
        json.loads(text)
    except ValueError:
        return None
    return line_note_id(text)


def _rewrite_good_lines(path: Path) -> tuple[set[str], int]:
    done: set[str] = set()
    dropped = 0
    tmp = path.with_name(path.name + ".tmp")
    with open(path, "rb") as src, open(tmp, "wb") as dst:
        for raw in src:
            note_id = _complete_line_id(raw)
            if note_id is None or note_id in done:
                dropped += 1
                continue
            done.add(note_id)
            dst.write(raw)
        dst.flush()
        os.fsync(dst.fileno())
    os.replace(tmp, path)
    return done, dropped


def iter_results(path: Path) -> Iterator[dict]:
    with open(path, encoding="utf-8") as fh:
        for raw in fh:
            if raw.strip():
                yield orjson.loads(raw)


class AtomicText:
    """A text file written under a temporary name and moved into place by `commit`."""

    def __init__(self, path: Path, newline: str | None = "\n") -> None:
        self.path = path
        self.tmp = path.with_name(path.name + ".tmp")
        self.fh = open(self.tmp, "w", encoding="utf-8", newline=newline)

    def commit(self) -> None:
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        self.fh.close()
        self.tmp.unlink(missing_ok=True)


def write_json_atomic(path: Path, data: dict) -> None:
    out = AtomicText(path)
    json.dump(data, out.fh, indent=2, ensure_ascii=False)
    out.fh.write("\n")
    out.commit()


class FindingsCsv:
    """findings.csv: one row per finding of every kind; an unreadable/unchecked note is one error row."""

    def __init__(self, path: Path) -> None:
        self.out = AtomicText(path, newline="")
        csv.writer(self.out.fh).writerow(FINDINGS_COLUMNS)

    def add_rows(self, rows: str) -> None:
        self.out.fh.write(rows)

    def commit(self) -> None:
        self.out.commit()

    def abort(self) -> None:
        self.out.abort()


def csv_rows(line: dict) -> str:
    """The findings.csv rows of one results line, as CSV text (built in the workers)."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    audit = line.get("audit") or {}
    head = [_cell(line.get("note_id")), _cell(audit.get("patient_id")), _cell(audit.get("service_date"))]
    if line.get("status") == "error":
        writer.writerow(head + ["note_error", "error", "error", _cell(line.get("error"))])
    for f in all_findings(line):
        writer.writerow(head + [f["id"], f["status"], f["severity"], _cell(f["message"])])
    return buf.getvalue()


def _cell(value) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def all_findings(line: dict) -> list[dict]:
    return list(line.get("findings") or []) + list((line.get("audit") or {}).get("history_findings") or [])


def is_complete(line: dict) -> bool:
    if line.get("status") != "ok" or not (line.get("code") or {}).get("cpt"):
        return False
    return not any(f["status"] == "missing" and f["severity"] == "error" for f in all_findings(line))


def summary_facts(line: dict) -> dict:
    """What summary.json needs from one line: small, so workers can send it instead of the line."""
    code = line.get("code") or {}
    audit = line.get("audit") or {}
    return facts_of(line.get("status"), line.get("error"), code.get("cpt"), code.get("out_of_family"),
                    audit.get("complete"), all_findings(line), audit.get("history_findings") or [],
                    audit.get("billing"))


def facts_of(status, error, cpt, family, complete, findings: list, history_findings: list,
             billing: dict | None) -> dict:
    """summary_facts from a line's parts (the Spark engine has them as columns, not as a line)."""
    return {
        "status": status, "error": error, "cpt": cpt, "family": family, "complete": bool(complete),
        "missing": [(f["id"], f["severity"]) for f in findings if f["status"] == "missing"],
        "history_missing": [f["id"] for f in history_findings if f["status"] == "missing"],
        "billing": None if not billing else {
            "status": billing.get("status"), "direction": billing.get("direction"),
            "billed_code": billing.get("billed_code"),
            "supported": billing.get("supported") or billing.get("supported_family")},
    }


class SummaryBuilder:
    """Counts for summary.json, fed one results line at a time (nothing per note is kept)."""

    def __init__(self, source: dict) -> None:
        self.source = source
        self.written = self.ok = self.error = self.complete = self.no_code = 0
        self.by_code: Counter[str] = Counter()
        self.by_family: Counter[str] = Counter()
        self.missing: Counter[str] = Counter()
        self.severity: Counter[str] = Counter()
        self.history: Counter[str] = Counter()
        self.billed: Counter[str] = Counter()
        self.directions: Counter[str] = Counter()
        self.pairs: Counter[tuple[str, str, str]] = Counter()
        self.errors_sample: list[tuple[int, str]] = []   # (source order, message), the first _ERRORS_SAMPLE

    def add(self, line: dict) -> None:
        self.add_facts(summary_facts(line))

    def add_facts(self, facts: dict, order: int | None = None) -> None:
        """Count one note. `order`: its place in the source (default: after every note added so far), so
        that builders filled in parallel and merged keep the first errors of the source as the sample."""
        order = self.written if order is None else order
        self.written += 1
        if facts["status"] != "ok":
            self.error += 1
            self._sample([(order, str(facts["error"]))])
        elif facts["cpt"]:
            self.ok += 1
            self.by_code[facts["cpt"]] += 1
        else:
            self.ok += 1
            if facts["family"]:
                self.by_family[facts["family"]] += 1
            else:
                self.no_code += 1
        self.complete += bool(facts["complete"])
        for finding_id, severity in facts["missing"]:
            self.severity[severity] += 1
        self.missing.update({finding_id for finding_id, _ in facts["missing"]})
        self.history.update(facts["history_missing"])
        billing = facts["billing"]
        if billing:
            self.billed["notes_with_billed"] += 1
            self.billed[billing["status"] or "not_checked"] += 1
            if billing["status"] == "mismatch":
                direction = billing["direction"] or "unknown"
                self.directions[direction] += 1
                self.pairs[(billing["billed_code"] or "?", billing["supported"] or "none", direction)] += 1

    def _sample(self, errors: list[tuple[int, str]]) -> None:
        if len(self.errors_sample) < _ERRORS_SAMPLE or min(errors)[0] < self.errors_sample[-1][0]:
            self.errors_sample = sorted(self.errors_sample + errors)[:_ERRORS_SAMPLE]

    def merge(self, other: SummaryBuilder) -> None:
        """Add the counts of a builder that saw other notes of the same source."""
        for name in ("written", "ok", "error", "complete", "no_code"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in ("by_code", "by_family", "missing", "severity", "history", "billed", "directions", "pairs"):
            getattr(self, name).update(getattr(other, name))
        if other.errors_sample:
            self._sample(other.errors_sample)

    def to_dict(self, notes_read: int) -> dict:
        return {
            "notes_read": notes_read,
            "notes_written": self.written,
            "read_equals_written": notes_read == self.written,
            "notes_ok": self.ok,
            "notes_error": self.error,
            "notes_complete": self.complete,
            "notes_incomplete": self.written - self.complete,
            "completeness_rate": round(self.complete / notes_read, 4) if notes_read else None,
            "error_count": self.error,
            "by_code": dict(sorted(self.by_code.items())),
            "by_out_of_family": _ranked(self.by_family),
            "no_code": self.no_code,
            "by_requirement_missing": _ranked(self.missing),
            "by_severity": {"error": self.severity["error"], "warning": self.severity["warning"]},
            "by_history_finding": _ranked(self.history),
            "billed": {key: self.billed[key] for key in
                       ("notes_with_billed", "supported", "mismatch", "unreadable", "not_checked")}
                      | {"by_direction": _ranked(self.directions)},
            "billed_mismatch_pairs": [{"billed": b, "supported": s, "direction": d, "count": n}
                                      for (b, s, d), n in _ranked(self.pairs).items()],
            "errors_sample": [message for _, message in self.errors_sample],
            "source": self.source,
        }


def _ranked(counter: Counter) -> dict:
    # Most frequent first, ties by key: the same counts always give the same file.
    return dict(sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])))
