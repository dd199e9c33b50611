"""report.html: one self-contained page an auditor opens from the audit folder.

Everything is inline (CSS, JS, SVG charts, the data as JSON), so the file opens offline and leaks nothing
to the network. Counts and charts cover every note streamed in; the table and the note views hold at most
`max_notes` of them, problem notes first, so the file stays small enough to open on a 100k-note export.
Evidence highlighting is resolved here, in Python, into text segments: span offsets are code-point
offsets and JavaScript strings count UTF-16 units, so doing it in the browser would misplace every
highlight after an emoji or other astral character.
"""

from __future__ import annotations

import html
import json
import os
import re
import secrets
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path

import orjson

from . import report_parts as page_parts

TEMPLATE = Path(__file__).with_name("report_template.html")
DATA_MARK = "\x00notes\x00"  # stands in for the notes' JSON until it is streamed into the file
# Where spans overlap, the most specific kind gives the colour; the tooltip still lists every span.
KIND_ORDER = ("medication", "diagnosis", "field", "finding", "code")
BILLED_MISMATCH = "billed_code_mismatch"


def write_report(out_path: Path, summary: dict, notes: Iterable[tuple[dict, str | None]],
                 *, max_notes: int = 2000) -> None:
    """Write report.html atomically. `notes` is streamed: results.jsonl dicts with their note text."""
    totals, keeper = Totals(), Keeper(max_notes)
    for seq, (result, text) in enumerate(notes):
        try:
            row = _row(result, seq)
        except Exception:  # noqa: BLE001 - one malformed line is shown as such; it never costs the report
            result, text = _unreadable(result, seq), None
            row = _row(result, seq)
        totals.add(row)
        del row["_findings"]
        if keeper.wants(row["rank"]):
            # Held as compact JSON: a parsed line takes several times the memory, times max_notes.
            keeper.add(row, orjson.dumps(result, default=str), text if isinstance(text, str) else None)
        else:
            keeper.drop(row["rank"])
    items = keeper.items()
    head, tail = _fill(_template(), {
        "generated": html.escape(datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")),
        "source": html.escape(page_parts.source_line(summary)),
        "kpis": page_parts.kpis(totals, summary if isinstance(summary, dict) else {}),
        "statusbar": page_parts.status_bar(totals),
        "charts": page_parts.charts(totals),
        "leftout": page_parts.left_out_notice(keeper, totals),
        "codeoptions": "".join(f'<option value="{html.escape(c)}">{html.escape(c)}</option>'
                               for c in sorted({row["code"] for row, _, _ in items})),
        "run": page_parts.run_details(summary),
        "data": DATA_MARK,
    }).rsplit(DATA_MARK, 1)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    # open(..., "x") rather than mkstemp: the report gets the same umask permissions as the other outputs.
    tmp = out_path.with_name(f".{out_path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "x", encoding="utf-8") as fh:
            fh.write(head)
            fh.write('{"notes":[')
            # One note at a time, so the page never exists in memory as a whole.
            for i, (row, raw, text) in enumerate(items):
                fh.write(("," if i else "") + _json_for_script(_note_view(row, orjson.loads(raw), text)))
            fh.write("]," + _json_for_script({"shown": len(items), "total": totals.total})[1:])
            fh.write(tail)
        os.replace(tmp, out_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _note_view(row: dict, result: dict, text: str | None) -> dict:
    try:
        return dict(row, **_detail(result, text, _findings(result)))
    except Exception:  # noqa: BLE001 - a line too malformed to draw is shown as unreadable
        return dict(row, **_detail(_unreadable(result, row["seq"]), None, []))


# ------------------------------------------------------------------ one table row per note

def _findings(result: dict) -> list[dict]:
    """Per-note, billing and cross-encounter findings, each once, tagged with where it came from."""
    audit = result.get("audit") if isinstance(result.get("audit"), dict) else {}
    tagged = [(f, "history") for f in audit.get("history_findings") or []]  # first: a merged copy keeps "history"
    tagged += [(f, "note") for f in result.get("findings") or []]
    seen, out = set(), []
    for f, origin in tagged:
        key = isinstance(f, dict) and (f.get("id"), f.get("status"), f.get("message"))
        if key and key not in seen:
            seen.add(key)
            fid = str(f.get("id") or "?")
            # claim findings (kind "coding") are shown with the billing column, not as missing documentation
            out.append(dict(f, id=fid, origin="billing" if f.get("kind") == "coding" or fid.startswith("billed_")
                            else origin))
    return out


def _unreadable(result, seq: int) -> dict:
    note_id = result.get("note_id") if isinstance(result, dict) else None
    name = str(note_id) if isinstance(note_id, (str, int)) else f"line {seq + 1}"
    return {"note_id": name, "status": "error", "error": f"note {name}: its result line could not be read"}


def _row(result: dict, seq: int) -> dict:
    audit = result.get("audit") if isinstance(result.get("audit"), dict) else {}
    code = result.get("code") if isinstance(result.get("code"), dict) else {}
    findings = _findings(result)
    missing = [f for f in findings if f.get("status") == "missing" and f["origin"] != "billing"]
    cpt, family = code.get("cpt"), code.get("out_of_family")
    # "complete" as summary.json counts it (outputs.is_complete): a missing `error` finding of any kind,
    # billing and cross-encounter included, makes a note incomplete.
    complete = audit.get("complete")
    if not isinstance(complete, bool):
        complete = result.get("status") == "ok" and bool(cpt) and not any(
            f.get("status") == "missing" and f.get("severity") == "error" for f in findings)
    if result.get("status") != "ok":
        status, code_label = "error", "error"
    elif not cpt:
        status = "out_of_family" if family else "incomplete"
        code_label = str(family) if family else "no code"
    else:
        status, code_label = ("complete" if complete else "incomplete"), str(cpt)
    billing = audit.get("billing") if isinstance(audit.get("billing"), dict) else {}
    billed = audit.get("billed")
    billed_state = str(billing.get("status") or "")
    if not billed_state:  # no billing block: read the billing findings themselves
        if any(f["id"] == BILLED_MISMATCH and f.get("status") == "missing" for f in findings):
            billed_state = "mismatch"
        elif any(f["id"] == BILLED_MISMATCH and f.get("status") == "met" for f in findings):
            billed_state = "supported"
    pair = ""
    if billed_state == "mismatch":
        supported = billing.get("supported") or billing.get("supported_family") or cpt or family or "none"
        pair = f"{billing.get('billed_code') or billed or '?'} → {supported}"
    history = sum(f["origin"] == "history" and f.get("status") == "missing" for f in missing)
    problem = status != "complete" or billed_state == "mismatch" or history
    return {
        "id": str(result.get("note_id") or f"line {seq + 1}"), "seq": seq, "status": status,
        "code": code_label, "patient": _text(audit.get("patient_id")), "date": _text(audit.get("service_date")),
        "billed": _text(billed), "billed_state": billed_state, "pair": pair, "history": history,
        "direction": _text(billing.get("direction")).replace("_", " "),
        "missing": len(missing), "missing_ids": [f["id"] for f in missing],
        "rank": 0 if problem else (1 if missing else 2), "_findings": findings,
    }


def _text(value) -> str:
    return "" if value is None else str(value)


class Keeper:
    """The notes the page shows: at most `limit`, dropping the least important (then the latest) first."""

    def __init__(self, limit: int) -> None:
        self.limit = max(0, int(limit))
        self.ranks: tuple[list, list, list] = ([], [], [])
        self.dropped: Counter = Counter()

    def wants(self, rank: int) -> bool:
        """False when the note would be the first one dropped: counted, never held."""
        return sum(map(len, self.ranks)) < self.limit or any(self.ranks[rank + 1:])

    def drop(self, rank: int) -> None:
        self.dropped["problem" if rank == 0 else "other"] += 1

    def add(self, row: dict, raw: str, text: str | None) -> None:
        self.ranks[row["rank"]].append((row, raw, text))
        if sum(map(len, self.ranks)) > self.limit:
            worst = next(bucket for bucket in reversed(self.ranks) if bucket)
            self.drop(worst.pop()[0]["rank"])

    def items(self) -> list[tuple[dict, str, str | None]]:
        kept = [item for bucket in self.ranks for item in bucket]
        return kept if self.dropped else sorted(kept, key=lambda item: item[0]["seq"])


class Totals:
    def __init__(self) -> None:
        self.total = 0
        self.status: Counter = Counter()
        self.codes: Counter = Counter()
        self.missed: Counter = Counter()
        self.missed_meta: dict[str, tuple[str, str]] = {}
        self.billed = self.mismatch = self.history_notes = 0
        self.pairs: Counter = Counter()

    def add(self, row: dict) -> None:
        self.total += 1
        self.status[row["status"]] += 1
        self.codes[row["code"]] += 1
        for f in row["_findings"]:
            if f.get("status") == "missing" and f["origin"] != "billing":
                self.missed[f["id"]] += 1
                self.missed_meta.setdefault(f["id"], (str(f.get("title") or f["id"]), str(f.get("severity"))))
        self.billed += bool(row["billed"])
        self.mismatch += row["billed_state"] == "mismatch"
        self.history_notes += bool(row["history"])
        if row["pair"]:
            self.pairs[row["pair"]] += 1


# ------------------------------------------------------------------ the note view: segments and findings

def _detail(result: dict, text: str | None, findings: list[dict]) -> dict:
    spans: list[tuple[str, str, int, int]] = []
    index: dict[tuple, int] = {}

    def add(kind: str, label: str, evidence) -> list[int]:
        ids = []
        for ev in evidence or []:
            if not isinstance(ev, dict) or text is None:
                continue
            start, end = ev.get("start"), ev.get("end")
            # A span that does not index this text would highlight the wrong words: leave it out.
            if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(text)):
                continue
            if isinstance(ev.get("text"), str) and text[start:end] != ev["text"]:
                continue
            key = (kind, label, start, end)
            if key not in index:
                index[key] = len(spans)
                spans.append(key)
            if index[key] not in ids:
                ids.append(index[key])
        return ids

    record = result.get("record") if isinstance(result.get("record"), dict) else {}
    facts = []
    for field, evidence in (record.get("evidence") or {}).items():
        value = page_parts.value_text(_lookup(record, field))
        label = f"{field}: {value}" if value else field
        facts.append([field, value, add("field", label, evidence)])
    for med in record.get("medications") or []:
        label = " ".join(page_parts.value_text(med.get(k)) for k in ("name", "concentration") if med.get(k))
        amount = ", ".join(f"{page_parts.value_text(med.get(k))} {u}".strip() for k, u in
                           (("dose", med.get("unit") or ""), ("volume_ml", "mL"), ("rate_ml_hr", "mL/hr"))
                           if med.get(k) is not None)
        facts.append(["medication", f"{label} {amount}".strip(),
                      add("medication", f"medication: {label}" + (f" ({amount})" if amount else ""),
                          med.get("evidence"))])
    for dx in record.get("diagnoses") or []:
        label = page_parts.value_text(dx.get("text")) + (f" ({dx['icd10']})" if dx.get("icd10") else "")
        facts.append(["diagnosis", label, add("diagnosis", f"diagnosis: {label}", dx.get("evidence"))])
    shown = [dict({k: f.get(k) for k in ("id", "title", "status", "severity", "message", "query", "source")},
                  origin=f["origin"],
                  ev=add("finding", f"finding: {f.get('title') or f['id']} ({f.get('status')})", f.get("evidence")))
             for f in findings]
    code = result.get("code") if isinstance(result.get("code"), dict) else {}
    rationale = [{"axis": s.get("axis"), "value": s.get("value"), "reason": s.get("reason"),
                  "ev": add("code", f"code {s.get('axis')}: {s.get('value')}", s.get("evidence"))}
                 for s in code.get("rationale") or [] if isinstance(s, dict)]
    audit = result.get("audit") if isinstance(result.get("audit"), dict) else {}
    return {
        "error": result.get("error"), "warnings": [str(w) for w in result.get("warnings") or []],
        "locator": _text(audit.get("locator")), "has_text": text is not None,
        "segments": _segments(text, spans) if text is not None else [],
        "spans": [[kind, label] for kind, label, _, _ in spans], "facts": facts, "findings": shown,
        "code_detail": {"cpt": code.get("cpt"), "out_of_family": code.get("out_of_family"),
                        "modifiers": code.get("modifiers") or [], "rationale": rationale,
                        "notes": [{"id": n.get("id"), "message": n.get("message")}
                                  for n in code.get("notes") or [] if isinstance(n, dict)]},
    }


def _segments(text: str, spans: list[tuple[str, str, int, int]]) -> list:
    """Split the text at every span edge: plain runs as strings, covered runs as
    [text, span ids, start, end, kind that colours it]."""
    events: dict[int, list[tuple[int, int]]] = {}
    for sid, (_, _, start, end) in enumerate(spans):
        events.setdefault(start, []).append((1, sid))
        events.setdefault(end, []).append((-1, sid))
    cuts = sorted({0, len(text), *events})
    active: set[int] = set()
    out: list = []
    for a, b in zip(cuts, cuts[1:]):
        for delta, sid in events.get(a, ()):
            (active.add if delta > 0 else active.discard)(sid)
        if not active:
            out.append(text[a:b])
            continue
        ids = sorted(active)
        kind = min((spans[i][0] for i in ids), key=KIND_ORDER.index)
        out.append([text[a:b], ids, a, b, kind])
    return out


def _lookup(record: dict, dotted: str):
    value = record
    for part in dotted.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


# ------------------------------------------------------------------ page assembly

def _json_for_script(data) -> str:
    # Inside <script type="application/json"> only "</script" could end the element early; escaping every
    # <, > and & makes that impossible whatever the notes contain.
    raw = json.dumps(data, ensure_ascii=True, separators=(",", ":"))
    return raw.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _template() -> str:
    return TEMPLATE.read_text(encoding="utf-8")


def _fill(template: str, values: dict[str, str]) -> str:
    # One pass, so a placeholder-like string inside a value is never expanded.
    return re.sub(r"<!--NC:(\w+)-->", lambda m: values.get(m.group(1), ""), template)
