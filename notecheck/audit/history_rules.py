"""The cross-encounter findings, computed from the history database with a payer profile's parameters.

frequency_limit, repeat_without_response, multiple_regions_same_day, multiple_levels_same_session: each
returned in the shape of notecheck.record.Finding, its evidence the short spans of the note it is about
(the other encounters are named by note id and date, never quoted).

The rules read the encounters through `HistoryLookups`, so one implementation serves both engines: the
local audit answers the lookups from its SQLite history (notecheck.audit.history.SqliteLookups), Spark
from the context its window functions computed for each note (notecheck.distributed.spark_history).
Every list a lookup returns is in a fixed order (dates ascending, note ids ascending), so the messages
are the same whichever engine built them.
"""

from __future__ import annotations

import calendar
import json
from collections.abc import Mapping
from datetime import date
from typing import Protocol

from .prior_response import DAYS_PER_UNIT

GROUP_LABEL = {"cervical_thoracic": "cervical/thoracic", "lumbar_sacral": "lumbar/sacral"}
KIND_LABEL = {"interlaminar": "interlaminar/caudal", "transforaminal": "transforaminal"}
# Messages name at most this many other encounters.
MAX_LISTED = 8


class HistoryLookups(Protocol):
    """What the cross-encounter rules ask about the encounters. Dates are ISO "YYYY-MM-DD" strings."""

    def note(self, note_id: str) -> Mapping | None:
        """The note's derived facts (the history's `notes` columns), or None if it was never recorded."""

    def note_groups(self, note_id: str) -> list[str]:
        """The region groups of the note's ESI sessions, ascending."""

    def sessions_by_date(self, patient_id: str, group: str, after: str, until: str) -> list[tuple[str, list[str]]]:
        """(date, note ids) of the patient's sessions in `group` with after < date <= until, by date."""

    def latest_before(self, patient_id: str, group: str, before: str, since: str | None) -> tuple[str, str] | None:
        """(date, note id) of the patient's latest session in `group` before `before` (and on or after
        `since`); of several notes on that date, the greatest note id."""

    def groups_on(self, patient_id: str, day: str) -> list[tuple[str, list[str]]]:
        """(region group, note ids) of the patient's sessions on `day`, by group."""

    def sessions_on(self, patient_id: str, day: str) -> list[tuple[str, str, str]]:
        """(note id, kind, comma-separated levels) of the patient's sessions on `day`, by note id."""


def _value(section: dict, key: str, profile_id: str):
    if key not in section:
        raise ValueError(f"payer profile {profile_id!r}: history parameter {key!r} is missing")
    item = section[key]
    return item.get("value") if isinstance(item, dict) and "value" in item else item


def _source(section: dict, key: str, profile_id: str) -> str:
    item = section.get(key)
    if isinstance(item, dict) and item.get("source"):
        return f"payer profile {profile_id}: {item['source']} [{item.get('confidence', '?')}]"
    return f"payer profile {profile_id}"


def months_before(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 - months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


def _listing(rows: list[tuple[str, str]]) -> str:
    shown = [f"{day} (note {ids})" for day, ids in rows[:MAX_LISTED]]
    more = len(rows) - MAX_LISTED
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


class HistoryFindings:
    def __init__(self, profile: dict) -> None:
        pid = str(profile.get("id", "?"))
        self.profile_id = pid
        history = profile.get("history")
        if not isinstance(history, dict):
            raise ValueError(f"payer profile {pid!r}: no 'history' section")
        self.sections = {}
        for name in ("counted", "frequency_limit", "repeat_without_response", "multiple_regions_same_day",
                     "multiple_levels_same_session"):
            if not isinstance(history.get(name), dict):
                raise ValueError(f"payer profile {pid!r}: history section {name!r} is missing")
            self.sections[name] = history[name]
        counted = self.sections["counted"]
        self.counted_codes = {str(c) for c in _value(counted, "codes", pid) or []}
        self.counted_families = {str(f) for f in _value(counted, "families", pid) or []}
        freq = self.sections["frequency_limit"]
        self.max_sessions = int(_value(freq, "max_sessions", pid))
        self.window_months = int(_value(freq, "window_months", pid))
        rep = self.sections["repeat_without_response"]
        self.min_percent = float(_value(rep, "min_relief_percent", pid))
        duration = rep.get("min_relief_duration")
        unit = str(duration.get("unit", "months") if isinstance(duration, dict) else "months").rstrip("s")
        if unit not in DAYS_PER_UNIT:
            raise ValueError(f"payer profile {pid!r}: min_relief_duration unit {unit!r} is not days/weeks/months")
        self.min_duration = float(_value(rep, "min_relief_duration", pid))
        self.min_duration_unit = unit
        # A month is 30.4375 days: "3 months" must pass a 3-month threshold, "12 weeks" (84 days) not.
        self.min_days = self.min_duration * DAYS_PER_UNIT[unit] - 0.5
        lookback = _value(rep, "lookback_months", pid)
        self.lookback_months = int(lookback) if lookback is not None else None
        self.max_regions = int(_value(self.sections["multiple_regions_same_day"], "max_regions", pid))
        self.max_levels = {str(k): int(v) for k, v in
                           _value(self.sections["multiple_levels_same_session"], "max_levels", pid).items()}
        self.lookups: HistoryLookups | None = None   # the encounters being read (set by for_note)

    # -- shared ----------------------------------------------------------------------------------
    def _finding(self, fid: str, status: str, message: str, source_key: str, evidence: list[dict]) -> dict:
        section = self.sections[fid]
        params = {"max_sessions": self.max_sessions, "window_months": self.window_months,
                  "min_relief_percent": f"{self.min_percent:g}",
                  "min_relief_duration": f"{self.min_duration:g} {self.min_duration_unit}s"}
        query = section.get("query") if status == "missing" else None
        return {"id": fid, "title": str(section.get("title", fid)), "status": status,
                "severity": str(section.get("severity", "warning")), "message": message,
                "query": query.format(**params) if query else None,
                "source": _source(section, source_key, self.profile_id), "evidence": evidence}

    def for_note(self, lookups: "HistoryLookups", note_id: str) -> list[dict]:
        """The four findings for one recorded note, read through `lookups` (the SQLite history of a local
        audit, or the window-function context Spark computed for this note); [] without patient, date or
        an ESI session."""
        self.lookups = lookups
        note = lookups.note(note_id)
        if note is None or not note["counted"] or not note["patient_id"] or not note["service_date"]:
            return []  # no patient, date or ESI session: nothing to compare across encounters
        groups = lookups.note_groups(note_id)
        if not groups:
            return []
        evidence = json.loads(note["evidence"])
        site = (evidence.get("region", []) + evidence.get("levels", []))[:3]
        return [self._frequency(note, groups, site), self._repeat(note, groups, evidence, site),
                self._regions(note, site), self._levels(note, evidence.get("levels", []) or site)]

    # -- the four findings -----------------------------------------------------------------------
    def _frequency(self, note, groups: list[str], site: list[dict]) -> dict:
        day = date.fromisoformat(note["service_date"])
        start = months_before(day, self.window_months)
        worst, parts = "met", []
        for group in groups:
            rows = [(d, ", ".join(ids)) for d, ids in
                    self.lookups.sessions_by_date(note["patient_id"], group, start.isoformat(), day.isoformat())]
            count = len(rows)
            label = GROUP_LABEL.get(group, group)
            window = f"the {self.window_months} months ending {day.isoformat()}"
            if count > self.max_sessions:
                worst = "missing"
                parts.append(f"This is ESI session {count} in the {label} region for this patient in {window}; "
                             f"the limit is {self.max_sessions} per region. Sessions: {_listing(rows)}.")
            else:
                parts.append(f"ESI session {count} of at most {self.max_sessions} in the {label} region "
                             f"in {window}.")
        return self._finding("frequency_limit", worst, " ".join(parts), "max_sessions", site)

    def _repeat(self, note, groups: list[str], evidence: dict, site: list[dict]) -> dict:
        day = date.fromisoformat(note["service_date"])
        prior = None
        for group in groups:
            since = (months_before(day, self.lookback_months).isoformat()
                     if self.lookback_months is not None else None)
            row = self.lookups.latest_before(note["patient_id"], group, day.isoformat(), since)
            if row and (prior is None or row[0] > prior[0]):
                prior = (row[0], row[1], group)
        cue = evidence.get("repeat", [])
        if prior is None and not note["says_repeat"]:
            return self._finding("repeat_without_response", "not_applicable",
                                 "Not a repeat injection: no earlier ESI session for this patient and region in "
                                 "the history, and the note does not describe a prior injection.",
                                 "min_relief_percent", [])
        why = (f"Repeat injection: earlier {GROUP_LABEL.get(prior[2], prior[2])} ESI session on {prior[0]} "
               f"(note {prior[1]})" if prior else "Repeat injection: the note describes a prior injection")
        percent, days = note["relief_percent"], note["relief_days"]
        days_from_history = False
        if percent is not None and days is None and note["relief_ongoing"] and prior:
            days = (day - date.fromisoformat(prior[0])).days  # "still 60% better": relief since that session
            days_from_history = True
        spans = (cue + evidence.get("percent", []) + evidence.get("duration", []))[:4] or site
        need = f"at least {self.min_percent:g}% relief lasting at least {self.min_duration:g} " \
               f"{self.min_duration_unit}s"
        if percent is None:
            return self._finding("repeat_without_response", "missing",
                                 f"{why}, but the note does not document the response to the prior injection "
                                 f"(percent relief on the same scale and how long it lasted); the payer profile "
                                 f"asks for {need}.", "min_relief_percent", spans)
        stated = f"documented relief {percent:g}%"
        if percent < self.min_percent:
            return self._finding("repeat_without_response", "missing",
                                 f"{why}; {stated} is below the {self.min_percent:g}% the payer profile asks for.",
                                 "min_relief_percent", spans)
        if days is None:
            return self._finding("repeat_without_response", "missing",
                                 f"{why}; {stated}, but the note does not say how long the relief lasted (the "
                                 f"payer profile asks for {need}).", "min_relief_duration", spans)
        lasted = f"{days / DAYS_PER_UNIT['month']:.1f} months" + (" (ongoing since the prior session)"
                                                                   if days_from_history else "")
        if days < self.min_days:
            return self._finding("repeat_without_response", "missing",
                                 f"{why}; {stated} lasting {lasted} is shorter than the "
                                 f"{self.min_duration:g} {self.min_duration_unit}s the payer profile asks for.",
                                 "min_relief_duration", spans)
        return self._finding("repeat_without_response", "met",
                             f"{why}; {stated} lasting {lasted} meets the payer profile ({need}).",
                             "min_relief_percent", spans)

    def _regions(self, note, site: list[dict]) -> dict:
        rows = [(g, ", ".join(ids)) for g, ids in self.lookups.groups_on(note["patient_id"], note["service_date"])]
        if len(rows) > self.max_regions:
            listed = "; ".join(f"{GROUP_LABEL.get(g, g)} (note {ids})" for g, ids in rows[:MAX_LISTED])
            return self._finding("multiple_regions_same_day", "missing",
                                 f"ESI sessions in {len(rows)} spinal regions on {note['service_date']}: {listed}; "
                                 f"the payer profile allows {self.max_regions} region per session.",
                                 "max_regions", site)
        return self._finding("multiple_regions_same_day", "met",
                             f"One spinal region treated on {note['service_date']}.", "max_regions", [])

    def _levels(self, note, site: list[dict]) -> dict:
        rows = self.lookups.sessions_on(note["patient_id"], note["service_date"])
        by_kind: dict[str, dict[str, list[str]]] = {}
        for row_note, kind, levels in rows:
            for level in filter(None, levels.split(",")):
                by_kind.setdefault(kind, {}).setdefault(level, [])
                if row_note not in by_kind[kind][level]:
                    by_kind[kind][level].append(row_note)
        over = []
        for kind, levels in sorted(by_kind.items()):
            limit = self.max_levels.get(kind, self.max_levels.get("interlaminar", 1))
            if len(levels) > limit:
                listed = ", ".join(f"{lvl} (note {', '.join(ids)})" for lvl, ids in list(levels.items())[:MAX_LISTED])
                over.append(f"{len(levels)} {KIND_LABEL.get(kind, kind)} levels on {note['service_date']}: "
                            f"{listed}; the payer profile covers {limit} per session")
        if over:
            return self._finding("multiple_levels_same_session", "missing", "; ".join(over) + ".", "max_levels", site)
        return self._finding("multiple_levels_same_session", "met",
                             f"Levels on {note['service_date']} are within the per-session limit.", "max_levels", [])
