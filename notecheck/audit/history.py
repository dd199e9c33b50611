"""History across encounters: an SQLite file of derived facts per note, and the findings that need it.

An auditor's exports arrive over months; the frequency and repeat-injection rules (rules.md §3.5-§3.6)
can only be checked against earlier encounters, so every audited note leaves its facts here: patient,
date of service, region group, levels, code or family, and whether it documents the response to a prior
injection. Never the note text: the database outlives the audit output, so it keeps only the few short
cited spans (a level, "60% relief", "for 3 months") that a finding shows as its evidence.

Thresholds come from a payer profile (patterns/profiles/*.yaml, `extends:` another profile); sessions are
dates of service, so two notes of one visit count once and re-recording a note id replaces its facts.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from ..patterns_path import load_yaml, patterns_dir
from ..profiles import DEFAULT_PROFILE, load_profile  # noqa: F401 - re-exported for callers
from . import prior_response
from .history_rules import HistoryFindings

log = logging.getLogger(__name__)

SCHEMA_VERSION = "1"
# Commit at least this often: one transaction per note would cost ~40 us each (5 s per 100k notes).
COMMIT_EVERY_NOTES = 500
COMMIT_EVERY_SECONDS = 1.0
_LEVEL_REGION = {"C": "cervical", "T": "thoracic", "L": "lumbar", "S": "sacral"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS notes (
    note_id TEXT PRIMARY KEY,
    patient_id TEXT,
    service_date TEXT,
    status TEXT NOT NULL,
    code TEXT,
    family TEXT,
    counted INTEGER NOT NULL,
    says_repeat INTEGER NOT NULL,
    relief_percent REAL,
    relief_days REAL,
    relief_ongoing INTEGER NOT NULL,
    evidence TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sessions (
    note_id TEXT NOT NULL,
    region_group TEXT NOT NULL,
    patient_id TEXT NOT NULL,
    service_date TEXT NOT NULL,
    kind TEXT NOT NULL,
    levels TEXT NOT NULL,          -- comma-separated, e.g. "L4-L5,L5-S1"
    PRIMARY KEY (note_id, region_group)
) WITHOUT ROWID;
-- Serves every history query: by patient, then region group (at most two), then date.
CREATE INDEX IF NOT EXISTS sessions_patient_region_date ON sessions (patient_id, region_group, service_date);
"""


@dataclass
class _Facts:
    status: str
    code: str | None
    family: str | None
    counted: bool
    groups: dict[str, list[str]]   # region group -> levels in it
    kind: str                      # "interlaminar" (incl. caudal) or "transforaminal"
    response: prior_response.PriorResponse
    evidence: dict[str, list[dict]]


NOTE_COLUMNS = ("note_id", "patient_id", "service_date", "status", "code", "family", "counted", "says_repeat",
                "relief_percent", "relief_days", "relief_ongoing", "evidence")
SESSION_COLUMNS = ("note_id", "region_group", "patient_id", "service_date", "kind", "levels")


class EncounterFacts:
    """What the history keeps of one checked note: its `notes` row and its ESI `sessions` rows.

    Shared by the SQLite history and the Spark engine, so both count the same sessions."""

    def __init__(self, profile: dict) -> None:
        self.rules = HistoryFindings(profile)
        self.region_groups: dict[str, str] = load_yaml(patterns_dir() / "coding.yaml")["region_groups"]
        self.cues = prior_response.load_cues()

    def row(self, result: dict, text: str | None, patient_id: str | None, service_date: str | None) -> tuple:
        """(notes row, [sessions rows]) of one results line, in the columns NOTE_COLUMNS / SESSION_COLUMNS."""
        note_id = str(result.get("note_id"))
        try:
            facts = self._facts(result, text)
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            # A malformed result must not stop the audit: keep the note, uncounted, and say which one.
            log.warning("note %s: history facts not derived (%s); not counted", note_id, type(exc).__name__)
            facts = _Facts("error", None, None, False, {}, "interlaminar", prior_response.PriorResponse(), {})
        patient = str(patient_id).strip() if patient_id is not None and str(patient_id).strip() else None
        day = iso_date(service_date)
        r = facts.response
        note = (note_id, patient, day, facts.status, facts.code, facts.family, int(facts.counted),
                int(r.says_repeat), r.percent, r.duration_days, int(r.ongoing),
                json.dumps(facts.evidence, separators=(",", ":")))
        sessions = [(note_id, group, patient, day, facts.kind, ",".join(levels))
                    for group, levels in facts.groups.items()] if facts.counted and patient and day else []
        return note, sessions

    def _facts(self, result: dict, text: str | None) -> _Facts:
        record = result.get("record") or {}
        code = result.get("code") or {}
        cpt, family = code.get("cpt"), code.get("out_of_family")
        status = str(result.get("status") or "error")
        counted = status == "ok" and (cpt in self.rules.counted_codes or family in self.rules.counted_families)
        groups: dict[str, list[str]] = {}
        primary = self.region_groups.get(record.get("region") or "")
        if primary:
            groups[primary] = []
        for level in record.get("levels") or []:
            group = self._level_group(str(level))
            if group:
                groups.setdefault(group, [])
                if level not in groups[group]:
                    groups[group].append(str(level))
        kind = "transforaminal" if family == "transforaminal" or record.get("approach") == "transforaminal" \
            else "interlaminar"
        response = prior_response.analyze(text, self.cues) if counted else prior_response.PriorResponse()
        cited = record.get("evidence") or {}
        evidence = {}
        for key, spans, limit in (("region", cited.get("region"), 2), ("levels", cited.get("levels"), 3),
                                  ("repeat", response.repeat_spans, 2), ("percent", response.percent_spans, 1),
                                  ("duration", response.duration_spans, 1)):
            if spans:
                evidence[key] = _short(spans, limit)
        return _Facts(status, cpt, family, counted and bool(groups), groups, kind, response, evidence)

    def _level_group(self, level: str) -> str | None:
        if level == "sacral hiatus":
            return self.region_groups.get("sacral")
        # The upper vertebra names the region, as the code picker does (T12-L1 counts as thoracic).
        return self.region_groups.get(_LEVEL_REGION.get(level[:1].upper(), ""))


class History:
    """Cross-encounter history in one SQLite file (WAL mode; one writer, the audit's main process)."""

    def __init__(self, db_path: Path, profile: dict | None = None) -> None:
        self.profile = profile if profile is not None else load_profile()
        self.facts = EncounterFacts(self.profile)
        self.rules = self.facts.rules
        self.db_path = Path(db_path)
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(str(self.db_path), timeout=30, isolation_level=None)
        self.conn.row_factory = sqlite3.Row
        try:
            self._open()
        except sqlite3.DatabaseError as exc:  # e.g. --db pointed at a file that is not SQLite
            self.conn.close()
            raise ValueError(f"history database {self.db_path}: cannot be used ({exc})") from None
        self._pending = 0
        self._last_commit = time.monotonic()

    def _open(self) -> None:
        self.conn.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL survives a killed process (only a power cut can lose the last commits).
        self.conn.execute("PRAGMA synchronous=NORMAL")
        # The index is written in patient order, not insertion order: a 2 MB page cache thrashes past ~50k
        # notes. 64 MB keeps 100k+ notes' pages in memory.
        self.conn.execute("PRAGMA cache_size=-65536")
        self.conn.executescript(_SCHEMA)
        version = self.conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if version is None:
            self.conn.execute("INSERT INTO meta VALUES ('schema_version', ?)", (SCHEMA_VERSION,))
        elif version[0] != SCHEMA_VERSION:
            raise sqlite3.DatabaseError(f"schema version {version[0]}, this notecheck writes version "
                                        f"{SCHEMA_VERSION}; use a new --db file")

    # -- writing ---------------------------------------------------------------------------------
    def record(self, result: dict, text: str | None, patient_id: str | None, service_date: str | None) -> None:
        """Store (or replace) one note's derived facts. The text is read for cues, never stored."""
        self._write([self.facts.row(result, text, patient_id, service_date)])
        if self._pending >= COMMIT_EVERY_NOTES or time.monotonic() - self._last_commit > COMMIT_EVERY_SECONDS:
            self.commit()

    def record_many(self, items: Iterable[tuple[dict, str | None, str | None, str | None]]) -> int:
        """record() for each (result, text, patient_id, service_date), then commit: call it once per chunk
        of results, before writing that chunk's output, so whatever a resumed run skips is in the history."""
        rows = [self.facts.row(*item) for item in items]
        self._write(rows)
        self.commit()
        return len(rows)

    def _write(self, rows: list[tuple]) -> None:
        if not rows:
            return
        if self._pending == 0:
            self.conn.execute("BEGIN")
        # REPLACE: re-recording a note id swaps its facts, so a re-audit never double counts.
        self.conn.executemany("INSERT OR REPLACE INTO notes VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", [n for n, _ in rows])
        self.conn.executemany("DELETE FROM sessions WHERE note_id=?", [(n[0],) for n, _ in rows])
        self.conn.executemany("INSERT OR REPLACE INTO sessions VALUES (?,?,?,?,?,?)",
                              [session for _, sessions in rows for session in sessions])
        self._pending += len(rows)

    def commit(self) -> None:
        """Make everything recorded so far durable (call it before writing results that depend on it)."""
        if self._pending:
            self.conn.execute("COMMIT")
            self._pending = 0
        self._last_commit = time.monotonic()

    # -- reading ---------------------------------------------------------------------------------
    def findings_for(self, note_id: str) -> list[dict]:
        """Cross-encounter findings for one recorded note ([] without patient, date or an ESI session)."""
        self.commit()
        return self.rules.for_note(SqliteLookups(self.conn), str(note_id))

    def close(self) -> None:
        try:
            self.commit()
        finally:
            self.conn.close()

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class SqliteLookups:
    """HistoryLookups answered from the history database (see history_rules.HistoryLookups)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def note(self, note_id: str):
        return self.conn.execute("SELECT * FROM notes WHERE note_id=?", (note_id,)).fetchone()

    def note_groups(self, note_id: str) -> list[str]:
        return [row[0] for row in self.conn.execute(
            "SELECT region_group FROM sessions WHERE note_id=? ORDER BY region_group", (note_id,))]

    def sessions_by_date(self, patient_id: str, group: str, after: str, until: str) -> list[tuple[str, list[str]]]:
        rows = self.conn.execute(
            "SELECT service_date, note_id FROM sessions WHERE patient_id=? AND region_group=? AND service_date>? "
            "AND service_date<=? ORDER BY service_date, note_id", (patient_id, group, after, until))
        return _grouped(rows)

    def latest_before(self, patient_id: str, group: str, before: str, since: str | None) -> tuple[str, str] | None:
        sql = "SELECT service_date, note_id FROM sessions WHERE patient_id=? AND region_group=? AND service_date<?"
        args = [patient_id, group, before]
        if since is not None:
            sql += " AND service_date>=?"
            args.append(since)
        row = self.conn.execute(sql + " ORDER BY service_date DESC, note_id DESC LIMIT 1", args).fetchone()
        return (row[0], row[1]) if row else None

    def groups_on(self, patient_id: str, day: str) -> list[tuple[str, list[str]]]:
        return _grouped(self.conn.execute(
            "SELECT region_group, note_id FROM sessions WHERE patient_id=? AND service_date=? "
            "ORDER BY region_group, note_id", (patient_id, day)))

    def sessions_on(self, patient_id: str, day: str) -> list[tuple[str, str, str]]:
        return [(row[0], row[1], row[2]) for row in self.conn.execute(
            "SELECT note_id, kind, levels FROM sessions WHERE patient_id=? AND service_date=? ORDER BY note_id",
            (patient_id, day))]


def _grouped(rows) -> list[tuple[str, list[str]]]:
    """(key, value) rows sorted by key -> [(key, [values])]."""
    out: list[tuple[str, list[str]]] = []
    for key, value in rows:
        if out and out[-1][0] == key:
            out[-1][1].append(value)
        else:
            out.append((key, [value]))
    return out


def iso_date(value: str | None) -> str | None:
    """"YYYY-MM-DD" (a datetime's date part is accepted), else None: a note without a usable date."""
    if value is None:
        return None
    try:
        return date.fromisoformat(str(value).strip()[:10]).isoformat()
    except ValueError:
        return None


def _short(spans: list | None, limit: int) -> list[dict]:
    out, seen = [], set()
    for span in spans or []:
        if not isinstance(span, dict) or (span.get("start"), span.get("end")) in seen:
            continue
        seen.add((span.get("start"), span.get("end")))
        if len(str(span.get("text", ""))) <= prior_response.MAX_SPAN_CHARS:
            out.append({"start": int(span["start"]), "end": int(span["end"]), "text": str(span["text"])})
        if len(out) == limit:
            break
    return out
