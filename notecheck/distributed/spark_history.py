"""Cross-encounter context with Spark window functions, and the lookups the history rules read from it.

The local audit answers the history rules' questions (notecheck.audit.history_rules.HistoryLookups) from
SQLite. On Spark the same answers are computed over the checked notes themselves, so they are right at
any scale and need no database:

- sessions: one row per (note, region group) of every counted ESI note with a patient and a date, the
  rows the local history's `sessions` table holds (EncounterFacts.row builds both);
- per (patient, region group, date of service): the note ids of that day, sorted;
- over Window.partitionBy(patient, region group).orderBy(day number):
  - `recent`: collect_list of the days in a range frame wide enough for the frequency window
    (31 days per month of the profile's window, plus one): a superset that `sessions_by_date` cuts to the
    exact calendar window (months_before), so a month's length never decides a count;
  - `prior`: lag(1), the latest earlier day and its greatest note id (the repeat-injection rule);
- per (patient, date): every session of that day (regions and levels per session);
- one context row per note: its groups with their `recent` and `prior`, and its day's sessions.

`ContextLookups` reads one such row; the rules code is the same one the local audit runs.
"""

from __future__ import annotations

DAY_SESSION = "struct<note_id:string,region_group:string,kind:string,levels:string>"


def context_frame(checked, window_months: int):
    """note_id -> by_group (array of {region_group, recent, prior}) and day_sessions, for noted sessions."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    sessions = (checked.where(F.col("counted") & F.col("h_patient").isNotNull() & F.col("h_date").isNotNull())
                .select("note_id", F.col("h_patient").alias("patient"), F.col("h_date").alias("day"),
                        F.explode("sessions").alias("s"))
                .select("note_id", "patient", "day", F.col("s.region_group").alias("region_group"),
                        F.col("s.kind").alias("kind"), F.col("s.levels").alias("levels")))
    per_day = (sessions.groupBy("patient", "region_group", "day")
               .agg(F.sort_array(F.collect_list("note_id")).alias("ids"))
               .withColumn("day_number", F.datediff(F.to_date("day"), F.lit("1970-01-01"))))
    ordered = Window.partitionBy("patient", "region_group").orderBy("day_number")
    span_days = 31 * max(int(window_months), 0) + 1
    per_day = (per_day
               .withColumn("recent", F.collect_list(F.struct("day", "ids"))
                           .over(ordered.rangeBetween(-span_days, 0)))
               .withColumn("prior", F.lag(F.struct(F.col("day"), F.element_at("ids", -1).alias("note_id")), 1)
                           .over(ordered)))
    groups = (sessions.join(per_day.select("patient", "region_group", "day", "recent", "prior"),
                            ["patient", "region_group", "day"])
              .groupBy("note_id", "patient", "day")
              .agg(F.collect_list(F.struct("region_group", "recent", "prior")).alias("by_group")))
    same_day = (sessions.groupBy("patient", "day")
                .agg(F.collect_list(F.struct("note_id", "region_group", "kind", "levels")).alias("day_sessions")))
    return groups.join(same_day, ["patient", "day"]).select("note_id", "by_group", "day_sessions")


def _plain(value):
    """Arrow gives nested values as numpy arrays of dicts; the lookups want lists."""
    if value is None:
        return []
    return list(value)


class ContextLookups:
    """HistoryLookups for one note, answered from its row of `context_frame` joined to its checked row."""

    def __init__(self, row) -> None:
        self.row = row
        self.groups = {}
        for item in _plain(getattr(row, "by_group", None)):
            recent = [(r["day"], list(r["ids"])) for r in _plain(item["recent"])]
            prior = item["prior"]
            self.groups[item["region_group"]] = (recent, None if prior is None else (prior["day"], prior["note_id"]))
        self.day_sessions = sorted((s["note_id"], s["region_group"], s["kind"], s["levels"])
                                   for s in _plain(getattr(row, "day_sessions", None)))

    def note(self, note_id: str):
        row = self.row
        if note_id != row.note_id:
            return None
        return {"counted": bool(row.counted), "patient_id": row.h_patient, "service_date": row.h_date,
                "evidence": row.evidence, "says_repeat": bool(row.says_repeat),
                "relief_percent": _number(row.relief_percent), "relief_days": _number(row.relief_days),
                "relief_ongoing": bool(row.relief_ongoing)}

    def note_groups(self, note_id: str) -> list[str]:
        return sorted(self.groups) if note_id == self.row.note_id else []

    def sessions_by_date(self, patient_id: str, group: str, after: str, until: str) -> list[tuple[str, list[str]]]:
        self._own(patient_id, until)
        recent, _ = self.groups.get(group, ([], None))
        return sorted((day, ids) for day, ids in recent if after < day <= until)

    def latest_before(self, patient_id: str, group: str, before: str, since: str | None) -> tuple[str, str] | None:
        self._own(patient_id, before)
        _, prior = self.groups.get(group, ([], None))
        if prior is None or (since is not None and prior[0] < since):
            return None
        return prior

    def groups_on(self, patient_id: str, day: str) -> list[tuple[str, list[str]]]:
        self._own(patient_id, day)
        by_group: dict[str, list[str]] = {}
        for note_id, group, _kind, _levels in self.day_sessions:
            by_group.setdefault(group, []).append(note_id)
        return sorted((group, sorted(ids)) for group, ids in by_group.items())

    def sessions_on(self, patient_id: str, day: str) -> list[tuple[str, str, str]]:
        self._own(patient_id, day)
        return [(note_id, kind, levels) for note_id, _group, kind, levels in self.day_sessions]

    def _own(self, patient_id: str, day: str) -> None:
        # The context holds this note's patient and day only; any other question is a caller's bug.
        if patient_id != self.row.h_patient or day != self.row.h_date:
            raise ValueError("history context asked about another patient or day than its note's")


def _number(value):
    if value is None or value != value:   # pandas gives NaN for a null double
        return None
    return float(value)
