"""What Spark's Python workers run: pandas batches in, plain rows out (never spaCy Docs).

Each function is handed to `DataFrame.mapInPandas`. The checker (the 1.5 s pipeline build) and the
history rules are built once per Python worker and kept in a module-level cache; Spark reuses its Python
workers (spark.python.worker.reuse, on by default), so a worker builds them once for the whole job.

The per-note work is the local audit's own (notecheck.audit): the same reading rules for a raw value
(`build_note`), the same engine call, the same results line (`workers.result_line`), the same history facts
(`EncounterFacts.row`) and, in the last step, the same cross-encounter rules (`HistoryFindings.for_note`)
fed from the context Spark's window functions computed (notecheck.distributed.spark_history). So a note's
results line is the one `notecheck audit` writes for it.

Nothing here raises for one note: a note that cannot be read or checked becomes a row with status "error".
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePath
from types import SimpleNamespace

import orjson

from ..audit import outputs
from ..audit._common import SourceNote, SourceOptions, error_note, line_cap, rename_repeat
from ..audit._tabular import build_note, json_line_note
from ..audit.workers import checked_lines, item_of
from .spark_history import ContextLookups
from .spark_lines import PIECES, split_line
from .spark_inputs import ABSENT, NoteFrame

# Notes checked and handed back per pandas frame: a few MB of results lines.
CHUNK = 256

# Per Python worker and payer profile: the checker (check step) and the history facts and rules (both
# steps; the history step never pays for the pipeline).
_CHECKERS: dict[str | None, object] = {}
_FACTS: dict[str | None, object] = {}

FINDING_STRUCT = ("struct<id:string,title:string,status:string,severity:string,kind:string,message:string,"
                  "query:string,source:string,evidence_json:string>")
# The check step's rows: the flat columns of the results, the pieces of the results line
# (spark_lines), and the history facts (the local history's notes and sessions rows).
CHECKED_FIELDS = [
    ("_row", "long"), ("note_id", "string"), ("status", "string"), ("error", "string"),
    ("suggested_code", "string"), ("out_of_family", "string"), ("base_complete", "boolean"),
    ("patient_id", "string"), ("service_date", "string"), ("billed", "string"), ("billing_status", "string"),
    ("billing_json", "string"), ("profile", "string"), ("warnings", "array<string>"),
    ("findings", f"array<{FINDING_STRUCT}>"),
    ("p0", "string"), ("warnings_json", "string"), ("p1", "string"), ("record_json", "string"), ("p2", "string"),
    ("p3", "string"), ("p4", "string"), ("spliced", "boolean"),
    ("h_patient", "string"), ("h_date", "string"), ("counted", "boolean"), ("says_repeat", "boolean"),
    ("relief_percent", "double"), ("relief_days", "double"), ("relief_ongoing", "boolean"), ("evidence", "string"),
    ("sessions", "array<struct<region_group:string,kind:string,levels:string>>"),
]
CHECKED_SCHEMA = ", ".join(f"{name} {kind}" for name, kind in CHECKED_FIELDS)
CHECKED_COLUMNS = [name for name, _ in CHECKED_FIELDS]
HISTORY_SCHEMA = (f"note_id string, history_json string, history_findings array<{FINDING_STRUCT}>, "
                  "history_blocks boolean, warning string, warning_json string")
HISTORY_COLUMNS = ["note_id", "history_json", "history_findings", "history_blocks", "warning", "warning_json"]
SUMMARY_INPUT = ["source_row", "status", "error", "suggested_code", "out_of_family", "complete", "findings",
                 "billing_json"]


def _engine(profile: str | None):
    if profile not in _CHECKERS:
        from ..engine import NoteChecker

        _CHECKERS[profile] = NoteChecker(profile=profile)
    return _CHECKERS[profile], _facts(profile)


def _facts(profile: str | None):
    if profile not in _FACTS:
        from ..audit.history import EncounterFacts
        from ..profiles import load_profile

        _FACTS[profile] = EncounterFacts(load_profile(profile))
    return _FACTS[profile]


def probe_batches(profile: str | None):
    """mapInPandas function for the worker check: this Python imports notecheck and builds its checker
    (kept for the audit that follows)."""

    def run(batches: Iterator) -> Iterator:
        import sys

        import pandas as pd

        for _ in batches:
            pass
        _engine(profile)
        yield pd.DataFrame({"python": [sys.executable], "version": [sys.version.split()[0]]})

    return run


# ----------------------------------------------------------------------------- 1. check

def check_batches(profile: str | None, notes: NoteFrame):
    """mapInPandas function: one row of CHECKED_SCHEMA per note row of spark_inputs.note_frame."""
    reader = SimpleNamespace(chosen=notes.chosen, options=SourceOptions(max_bytes=notes.max_bytes))
    how = _How(ABSENT[notes.kind], notes.json_keys or {}, PurePath(notes.path).name if notes.path else "",
               line_cap(notes.max_bytes))

    def run(batches: Iterator) -> Iterator:
        import pandas as pd

        checker, facts = _engine(profile)
        for pdf in batches:
            for start in range(0, len(pdf), CHUNK):   # whatever Arrow batch size the session uses
                notes_read = [_read(reader, row, how) for row in _rows(pdf.iloc[start:start + CHUNK])]
                yield pd.DataFrame(_check(checker, facts, notes_read), columns=CHECKED_COLUMNS)

    return run


@dataclass(frozen=True)
class _How:
    absent: str                 # what a missing text is called in this kind of export
    json_keys: dict             # JSONL: field -> key
    name: str                   # the export's file name, for JSONL locators
    line_cap: int


def _rows(pdf) -> list[SimpleNamespace]:
    # Not itertuples: it renames columns that start with "_".
    return [SimpleNamespace(**record) for record in pdf.to_dict("records")]


def _read(reader, row, how: _How) -> tuple[int, SourceNote]:
    """A note as the local readers would give it, renamed as Source.__iter__ renames repeated ids."""
    try:
        if row.raw_line is not None:
            note = _json_line(reader, row, how)
        elif row.problem is not None:
            note = error_note(row.fallback_id, row.locator, row.problem)
        else:
            values = {"id": row.id_value, "patient": row.patient, "date": row.date, "billed": row.billed,
                      "text": None if row.data is None else bytes(row.data).decode("utf-8", "surrogateescape")}
            note = build_note(reader, values.get, row.fallback_id, row.locator, how.absent)
        if row.dup_n is not None and row.dup_n == row.dup_n:   # NaN-safe: pandas gives floats for nulls
            rename_repeat(note, int(row.dup_n))
    except Exception as exc:  # noqa: BLE001 - one unreadable row is that row's error, never the task's
        note = error_note(str(row.fallback_id), str(row.locator), f"could not be read ({type(exc).__name__})")
    return int(row._row), note


def _json_line(reader, row, how: _How) -> SourceNote:
    raw, line_no = bytes(row.raw_line), int(row.record_no)
    if len(raw) > how.line_cap:
        return error_note(f"line-{line_no}", f"{how.name}:line {line_no}", f"line too large (over {how.line_cap} bytes)")
    if line_no == 1:
        raw = raw.removeprefix(b"\xef\xbb\xbf")
    return json_line_note(raw, line_no, how.name, how.json_keys, reader)


def _check(checker, facts, notes: list[tuple[int, SourceNote]]) -> list[tuple]:
    rows = []
    items = [item_of(note) for _, note in notes]
    for (row_no, note), (_, line) in zip(notes, checked_lines(checker, items)):
        (note_row, sessions) = facts.row(line, note.text, note.patient_id, note.service_date)
        (_, patient, day, _status, _code, _family, counted, says_repeat, percent, days, ongoing, evidence) = note_row
        rows.append((row_no, *_flat(line), *_pieces(line), patient, day, bool(counted), bool(says_repeat),
                     percent, days, bool(ongoing), evidence,
                     [{"region_group": g, "kind": k, "levels": lv} for (_, g, _, _, k, lv) in sessions]))
    return rows


def _flat(line: dict) -> tuple:
    code = line.get("code") or {}
    audit = line["audit"]
    billing = audit.get("billing")
    return (line["note_id"], line["status"], line.get("error"), code.get("cpt"), code.get("out_of_family"),
            bool(audit["complete"]), audit.get("patient_id"), audit.get("service_date"), audit.get("billed"),
            (billing or {}).get("status"), None if billing is None else orjson.dumps(billing).decode(),
            line.get("profile"), list(line.get("warnings") or []),
            [_flat_finding(f, f.get("kind", "documentation")) for f in line.get("findings") or []])


def _pieces(line: dict) -> tuple:
    pieces = split_line(line)
    return (*(pieces[name] for name in PIECES), pieces["spliced"])


# ----------------------------------------------------------------------------- 2. history

def history_batches(profile: str | None):
    """mapInPandas function: a counted note's facts joined with its window context -> HISTORY_SCHEMA."""

    def run(batches: Iterator) -> Iterator:
        import pandas as pd

        rules = _facts(profile).rules
        for pdf in batches:
            yield pd.DataFrame([_history(rules, row) for row in _rows(pdf)], columns=HISTORY_COLUMNS)

    return run


def _history(rules, row) -> tuple:
    """The local audit's final pass for one note (notecheck.audit.workers.finalize_task): its
    cross-encounter findings, and whether one of them keeps it from being complete."""
    try:
        findings = rules.for_note(ContextLookups(row), row.note_id)
    except Exception as exc:  # noqa: BLE001 - the note keeps its results, and says what is missing
        warning = f"cross-encounter findings not computed ({type(exc).__name__})"
        return row.note_id, "[]", [], False, warning, orjson.dumps(warning).decode()
    blocks = any(f["status"] == "missing" and f["severity"] == "error" for f in findings)
    return (row.note_id, orjson.dumps(findings).decode(), [_flat_finding(f, "history") for f in findings],
            blocks, None, None)


def _flat_finding(f: dict, kind: str) -> dict:
    return {"id": f["id"], "title": f.get("title"), "status": f["status"], "severity": f["severity"], "kind": kind,
            "message": f.get("message"), "query": f.get("query"), "source": f.get("source"),
            "evidence_json": orjson.dumps(f.get("evidence") or []).decode()}


# ----------------------------------------------------------------------------- 3. summary

def summary_batches(batches: Iterator) -> Iterator:
    """mapInPandas function: one partial SummaryBuilder per partition (pickled), merged on the driver."""
    import pandas as pd

    builder = outputs.SummaryBuilder({})
    for pdf in batches:
        for row in _rows(pdf):
            builder.add_facts(_summary_facts(row), order=int(row.source_row))
    yield pd.DataFrame({"state": [pickle.dumps(builder)]})


def _summary_facts(row) -> dict:
    """notecheck.audit.outputs.summary_facts, from the flat columns of a results row."""
    findings = list(row.findings) if row.findings is not None else []
    return outputs.facts_of(row.status, row.error, row.suggested_code, row.out_of_family, row.complete, findings,
                            [f for f in findings if f["kind"] == "history"],
                            orjson.loads(row.billing_json) if row.billing_json else None)
