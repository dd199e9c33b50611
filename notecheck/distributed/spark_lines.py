"""A results line cut around the parts the cross-encounter step fills in, and put back together in SQL.

A note's results line (notecheck.audit: the output contract plus "audit") is about 20 kB, almost all of it
known once the note is checked. Only three parts wait for the other encounters: `warnings` (a note whose
history could not be computed says so there), `audit.history_findings` and `audit.complete`. So the check
step cuts the line, serialised exactly as the local audit serialises it, around those parts (and around
the record, stored once as its own column), and the results are put back together with `concat` in the
JVM: the large text never travels to a Python worker a second time and never shuffles.

    line = P0 warnings P1 record P2 history_findings P3 complete P4

Sentinels mark the cuts: JSON strings no note can produce (a note with a NUL is refused as binary, and the
sentinel must appear exactly once); if one did, the line is kept whole and uncut (`spliced` false).
"""

from __future__ import annotations

import orjson

from ..audit import outputs

_SENTINEL = {name: f"\x00notecheck:{name}\x00" for name in ("warnings", "record", "history", "complete")}
_TOKEN = {name: orjson.dumps(value).decode() for name, value in _SENTINEL.items()}
PIECES = ("p0", "warnings_json", "p1", "record_json", "p2", "p3", "p4")


def split_line(line: dict) -> dict:
    """The pieces of one results line (the keys of PIECES, plus `spliced`)."""
    audit = line["audit"]
    template = {**line, "warnings": _SENTINEL["warnings"], "record": _SENTINEL["record"],
                "audit": {**audit, "history_findings": _SENTINEL["history"], "complete": _SENTINEL["complete"]}}
    text = outputs.dump_line(template).rstrip("\n")
    cuts = []
    for name in ("warnings", "record", "history", "complete"):
        if text.count(_TOKEN[name]) != 1:
            return {**dict.fromkeys(PIECES), "p0": outputs.dump_line(line).rstrip("\n"), "spliced": False}
        cuts.append(text.index(_TOKEN[name]))
    pieces, start = [], 0
    for name, at in zip(("warnings", "record", "history", "complete"), cuts):
        pieces.append(text[start:at])
        start = at + len(_TOKEN[name])
    pieces.append(text[start:])
    p0, p1, p2, p3, p4 = pieces
    record = line.get("record")
    return {"p0": p0, "warnings_json": orjson.dumps(line.get("warnings") or []).decode(), "p1": p1,
            "record_json": None if record is None else orjson.dumps(record).decode(), "p2": p2, "p3": p3,
            "p4": p4, "spliced": True}


def join_pieces(pieces: dict, history_json: str = "[]", complete: bool = False,
                warning_json: str | None = None) -> str:
    """The Python twin of `result_json_column` (for tests and for reading pieces back)."""
    if not pieces["spliced"]:
        return pieces["p0"]
    warnings = pieces["warnings_json"]
    if warning_json is not None:
        warnings = warnings[:-1] + ("," if warnings != "[]" else "") + warning_json + "]"
    return (pieces["p0"] + warnings + pieces["p1"] + (pieces["record_json"] or "null") + pieces["p2"]
            + history_json + pieces["p3"] + ("true" if complete else "false") + pieces["p4"])


def result_json_column(history_json, complete, warning_json):
    """The SQL expression that joins the pieces of the checked row with the history step's outputs."""
    from pyspark.sql import functions as F

    warnings = F.when(warning_json.isNull(), F.col("warnings_json")).otherwise(F.concat(
        F.expr("substring(warnings_json, 1, length(warnings_json) - 1)"),
        F.when(F.col("warnings_json") == "[]", F.lit("")).otherwise(F.lit(",")), warning_json, F.lit("]")))
    joined = F.concat(F.col("p0"), warnings, F.col("p1"), F.coalesce(F.col("record_json"), F.lit("null")),
                      F.col("p2"), F.coalesce(history_json, F.lit("[]")), F.col("p3"),
                      F.when(complete, F.lit("true")).otherwise(F.lit("false")), F.col("p4"))
    return F.when(F.col("spliced"), joined).otherwise(F.col("p0"))
