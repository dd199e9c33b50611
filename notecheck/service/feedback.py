"""The CDS Hooks feedback store: what clinicians did with notecheck's cards, in one SQLite file.

`POST /cds-services/{id}/feedback` (CDS Hooks 2.0 §Feedback) sends, per card acted on, the card uuid, the
outcome (`accepted` with the suggestion ids taken, or `overridden` with an optional reason Coding and user
comment) and when. That is the audit trail of which findings clinicians override and why. Only those
fields are stored: the feedback carries no note, and any other field a client adds is dropped, so no note
text can reach the file. (The user comment is the clinician's own words, capped in length.)

Several uvicorn worker processes write to the same file: WAL mode lets readers run beside the one writer,
each call opens its own short-lived connection (so the store can be shared by threads and survives a fork),
and each `add` is one `BEGIN IMMEDIATE` transaction, all items or none.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import sqlite3
import time
from pathlib import Path

SCHEMA_VERSION = "1"
MAX_ITEMS = 500
MAX_COMMENT_CHARS = 1000
_MAX_ID_CHARS = 200
# Ids and systems are single tokens: printable ASCII, no whitespace (a uuid, a URI).
_TOKEN = re.compile(r"[!-~]+")
# A FHIR `code`: words without leading, trailing or repeated whitespace.
_CODE = re.compile(r"\S+( \S+)*")
_OUTCOMES = ("accepted", "overridden")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY,
    service_id TEXT NOT NULL,
    hook_instance TEXT,
    card TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('accepted', 'overridden')),
    accepted_suggestions TEXT NOT NULL,      -- JSON array of suggestion uuids
    override_reason_system TEXT,
    override_reason_code TEXT,
    override_reason_display TEXT,
    user_comment TEXT,
    outcome_timestamp TEXT NOT NULL,         -- as sent, normalised to UTC ISO 8601
    received_at TEXT NOT NULL                -- when this service stored it, UTC ISO 8601
);
CREATE INDEX IF NOT EXISTS feedback_card ON feedback (service_id, card);
"""
_COLUMNS = ("id", "service_id", "hook_instance", "card", "outcome", "accepted_suggestions",
            "override_reason_system", "override_reason_code", "override_reason_display", "user_comment",
            "outcome_timestamp", "received_at")


class FeedbackStore:
    """CDS Hooks card feedback in a SQLite file (WAL), safe for several threads and processes."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not self.path.exists():
                # Clinician comments are kept here: readable by the service's user only.
                try:
                    os.close(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
                except FileExistsError:  # another worker created it first
                    pass
            with self._connect() as conn:
                _retry(lambda: conn.execute("PRAGMA journal_mode=WAL"))
                conn.executescript(_SCHEMA)  # IF NOT EXISTS: the workers may all run this at start-up
                conn.execute("BEGIN IMMEDIATE")
                row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
                if row is None:
                    conn.execute("INSERT INTO meta VALUES ('schema_version', ?)", (SCHEMA_VERSION,))
                conn.execute("COMMIT")
        except (sqlite3.DatabaseError, OSError) as exc:  # e.g. the path is some other file, or unwritable
            raise ValueError(f"feedback database {self.path}: cannot be used ({exc})") from None
        if row is not None and row[0] != SCHEMA_VERSION:
            raise ValueError(f"feedback database {self.path}: schema version {row[0]}, this notecheck "
                             f"writes version {SCHEMA_VERSION}; use a new file")

    def add(self, service_id: str, feedback: list[dict], *, hook_instance: str | None = None) -> int:
        """Validate and store a feedback request's items; returns how many were stored.

        Raises ValueError naming the first bad item and field (nothing is stored then)."""
        service_id = _token(service_id, "service_id")
        if hook_instance is not None:
            hook_instance = _token(hook_instance, "hookInstance")
        if not isinstance(feedback, list) or not feedback:
            raise ValueError("feedback must be a non-empty list of card feedback items")
        if len(feedback) > MAX_ITEMS:
            raise ValueError(f"feedback has {len(feedback)} items; at most {MAX_ITEMS} per request")
        received = _utc_iso(dt.datetime.now(dt.timezone.utc))
        rows = [(service_id, hook_instance, *_item(item, i), received) for i, item in enumerate(feedback)]
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT INTO feedback (service_id, hook_instance, card, outcome, accepted_suggestions, "
                "override_reason_system, override_reason_code, override_reason_display, user_comment, "
                "outcome_timestamp, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            conn.execute("COMMIT")
        return len(rows)

    def rows(self, service_id: str | None = None) -> list[dict]:
        """The stored feedback, oldest first, optionally for one service; `accepted_suggestions` as a list."""
        query = f"SELECT {', '.join(_COLUMNS)} FROM feedback"
        params: tuple = ()
        if service_id is not None:
            query += " WHERE service_id = ?"
            params = (service_id,)
        with self._connect() as conn:
            found = conn.execute(query + " ORDER BY id", params).fetchall()
        out = []
        for row in found:
            record = dict(zip(_COLUMNS, row))
            record["accepted_suggestions"] = json.loads(record["accepted_suggestions"])
            out.append(record)
        return out

    def _connect(self) -> _Connection:
        return _Connection(self.path)


class _Connection:
    """One short-lived autocommit connection (transactions are explicit), closed on exit; rolls back on
    error so a failed `add` leaves no partial rows and no lock."""

    def __init__(self, path: Path) -> None:
        # timeout: how long a writer waits for another worker's transaction (they last milliseconds).
        self.conn = sqlite3.connect(str(path), timeout=30, isolation_level=None)

    def __enter__(self) -> sqlite3.Connection:
        return self.conn

    def __exit__(self, exc_type, *_) -> None:
        try:
            if exc_type is not None and self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
        finally:
            self.conn.close()


def _retry(step, attempts: int = 50):
    """Switching to WAL needs a moment alone with the file; a second worker starting at the same instant
    can get SQLITE_BUSY without the busy handler, so try again briefly."""
    for attempt in range(attempts):
        try:
            return step()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.05)


# -- validation ----------------------------------------------------------------------------------------


def _item(item: object, index: int) -> tuple:
    """One feedback item as the row's card .. outcome_timestamp columns; ValueError names what is wrong."""
    where = f"feedback[{index}]"
    if not isinstance(item, dict):
        raise ValueError(f"{where} must be an object, not {type(item).__name__}")
    card = _token(item.get("card"), f"{where}.card")
    outcome = item.get("outcome")
    if outcome not in _OUTCOMES:
        raise ValueError(f"{where}.outcome must be 'accepted' or 'overridden'")

    accepted = item.get("acceptedSuggestions")
    reason = item.get("overrideReason")
    suggestions: list[str] = []
    if outcome == "accepted":
        if reason is not None:
            raise ValueError(f"{where}.overrideReason is only for an overridden outcome")
        # CDS Hooks 2.0: acceptedSuggestions is required for accepted outcomes (one or more).
        if not isinstance(accepted, list) or not accepted:
            raise ValueError(f"{where}.acceptedSuggestions must list the accepted suggestions for an accepted outcome")
        for j, suggestion in enumerate(accepted):
            if not isinstance(suggestion, dict):
                raise ValueError(f"{where}.acceptedSuggestions[{j}] must be an object with an id")
            suggestions.append(_token(suggestion.get("id"), f"{where}.acceptedSuggestions[{j}].id"))
    elif accepted not in (None, []):
        raise ValueError(f"{where}.acceptedSuggestions is only for an accepted outcome")

    system = code = display = comment = None
    if reason is not None:
        if not isinstance(reason, dict):
            raise ValueError(f"{where}.overrideReason must be an object with a reason Coding and/or a userComment")
        coding = reason.get("reason")
        if coding is not None:
            if not isinstance(coding, dict):
                raise ValueError(f"{where}.overrideReason.reason must be a Coding object")
            code = _code(coding.get("code"), f"{where}.overrideReason.reason.code")
            if coding.get("system") is not None:
                system = _token(coding["system"], f"{where}.overrideReason.reason.system")
            display = _text(coding.get("display"), f"{where}.overrideReason.reason.display", _MAX_ID_CHARS)
        comment = _text(reason.get("userComment"), f"{where}.overrideReason.userComment", MAX_COMMENT_CHARS)
        if coding is None and comment is None:
            raise ValueError(f"{where}.overrideReason needs a reason Coding or a userComment")

    when = _timestamp(item.get("outcomeTimestamp"), f"{where}.outcomeTimestamp")
    return card, outcome, json.dumps(suggestions), system, code, display, comment, when


def _token(value: object, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} is required (a non-empty string)")
    if len(value) > _MAX_ID_CHARS or not _TOKEN.fullmatch(value):
        raise ValueError(f"{name} must be at most {_MAX_ID_CHARS} printable characters without spaces")
    return value


def _code(value: object, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} is required (a non-empty string)")
    if len(value) > _MAX_ID_CHARS or not _CODE.fullmatch(value):
        raise ValueError(f"{name} must be a FHIR code: at most {_MAX_ID_CHARS} characters, no leading, trailing "
                         "or repeated spaces")
    return value


def _text(value: object, name: str, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string")
    value = value.strip()
    if len(value) > limit:
        raise ValueError(f"{name} is {len(value)} characters; at most {limit}")
    return value or None


def _timestamp(value: object, name: str) -> str:
    """An ISO 8601 / RFC 3339 date-time with a zone (the spec says UTC), stored normalised to UTC."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} is required (an ISO 8601 date-time in UTC, e.g. 2026-01-31T14:05:00Z)")
    try:
        when = dt.datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        raise ValueError(f"{name} is not an ISO 8601 date-time (e.g. 2026-01-31T14:05:00Z)") from None
    if when.tzinfo is None:
        raise ValueError(f"{name} needs a timezone (UTC, e.g. 2026-01-31T14:05:00Z)")
    return _utc_iso(when)


def _utc_iso(when: dt.datetime) -> str:
    return when.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
