"""The static parts of report.html: headline cards, the status bar, SVG bar charts, run details.

Each function returns escaped HTML for one placeholder of report_template.html.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from ..patterns_path import load_yaml, patterns_dir

if TYPE_CHECKING:
    from .report import Keeper, Totals

STATUSES = ("complete", "incomplete", "out_of_family", "error")
STATUS_LABELS = {"complete": "Complete", "incomplete": "Incomplete", "out_of_family": "Out of family",
                 "error": "Error"}


def value_text(value) -> str:
    """A record value in a few words, for tooltips and the facts list."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return ", ".join(value_text(v) for v in value if not isinstance(v, dict))
    if isinstance(value, dict):
        parts = [f"{k.replace('_', ' ')} {value_text(v)}" for k, v in value.items()
                 if v is not None and v is not False and v != [] and not isinstance(v, dict)]
        return "; ".join(parts)[:80]
    return str(value)


def _code_names() -> dict[str, str]:
    """Plain-words labels for the code chart, from the coding rules (data, not code)."""
    try:
        rules = load_yaml(patterns_dir() / "coding.yaml")
    except Exception:  # noqa: BLE001 - labels are a nicety; the report must still be written
        return {}
    names = {}
    for row in rules.get("decision_table") or []:
        parts = [str(row.get(k, "")).replace("_", "/") for k in ("region_group", "delivery", "imaging")]
        names[str(row.get("cpt"))] = ", ".join(p.replace("with/imaging", "imaging").replace(
            "without/imaging", "no imaging") for p in parts if p)
    for family, info in (rules.get("out_of_family") or {}).items():
        if isinstance(info, dict) and info.get("name"):
            names[family] = f"out of family: {info['name']}"
    return names


def source_line(summary) -> str:
    source = summary.get("source") if isinstance(summary, dict) else None
    if isinstance(source, dict):
        return str(source.get("describe") or source.get("path") or "")
    return str(source or "")


def kpis(t: Totals, summary: dict) -> str:
    pct = (lambda n: f"{100 * n / t.total:.0f}%") if t.total else (lambda n: "–")
    read, written = summary.get("notes_read"), summary.get("notes_written")
    integrity = f"read {read:,}, written {written:,}" if isinstance(read, int) and isinstance(written, int) else ""
    cards = [("notes", "Notes audited", f"{t.total:,}", integrity),
             ("complete", "Complete", pct(t.status["complete"]), f"{t.status['complete']:,} notes"),
             ("incomplete", "Incomplete", f"{t.status['incomplete']:,}", "a required element or claim gap"),
             ("out_of_family", "Out of family", f"{t.status['out_of_family']:,}", "not a 62320–62327 procedure"),
             ("error", "Could not check", f"{t.status['error']:,}", "unreadable or not an epidural note")]
    if t.billed:
        cards.append(("mismatch", "Billed code mismatch", f"{t.mismatch:,}", f"of {t.billed:,} billed notes"))
    if t.history_notes:
        cards.append(("history", "Cross-encounter issues", f"{t.history_notes:,}", "notes flagged"))
    return "".join(
        f'<div class="kpi kpi-{key}" data-kpi="{key}"><div class="kpi-label">{html.escape(label)}</div>'
        f'<div class="kpi-value">{html.escape(value)}</div><div class="kpi-sub">{html.escape(sub)}</div></div>'
        for key, label, value, sub in cards)


def status_bar(t: Totals) -> str:
    if not t.total:
        return ""
    x, parts, legend = 0.0, [], []
    for status in STATUSES:
        n = t.status[status]
        if n:
            w = 1000 * n / t.total
            tip = f"{STATUS_LABELS[status]}: {n:,} ({100 * n / t.total:.1f}%)"
            parts.append(f'<rect class="st-{status}" x="{x:.1f}" y="0" width="{w:.1f}" height="14">'
                         f'<title>{html.escape(tip)}</title></rect>')
            legend.append(f'<span class="legend-item"><i class="sw st-{status}"></i>{html.escape(tip)}</span>')
            x += w
    return (f'<svg class="statusbar" viewBox="0 0 1000 14" preserveAspectRatio="none" role="img" '
            f'aria-label="notes by status">{"".join(parts)}</svg><div class="legend">{"".join(legend)}</div>')


def _bar_chart(chart_id: str, title: str, rows: list[tuple[str, int, str, str]], empty: str,
               subs: dict[str, str] | None = None) -> str:
    """Horizontal bars: (label, count, css class, tooltip) rows; `subs` adds a muted line under a label."""
    if not rows:
        return (f'<figure class="card chart" id="{chart_id}"><h3>{html.escape(title)}</h3>'
                f'<p class="empty">{html.escape(empty)}</p></figure>')
    subs = subs or {}
    top, bar_h, gap, label_w, width = max(n for _, n, _, _ in rows), 22, (16 if subs else 8), 210, 620
    height = len(rows) * (bar_h + gap)
    out = []
    for i, (label, n, cls, tip) in enumerate(rows):
        y = i * (bar_h + gap)
        w = max(2.0, (width - label_w - 60) * n / top)
        short = label if len(label) <= 28 else label[:27] + "…"
        out.append(f'<g class="bar-row"><title>{html.escape(tip)}</title>'
                   f'<text class="bar-label" x="{label_w - 10}" y="{y + bar_h / 2 + (0 if label in subs else 4)}" '
                   f'text-anchor="end">{html.escape(short)}{_sub_line(subs.get(label), label_w - 10)}</text>'
                   f'<rect class="bar {cls}" x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h}" rx="3"/>'
                   f'<text class="bar-value" x="{label_w + w + 6:.1f}" y="{y + bar_h / 2 + 4}">{n:,}</text></g>')
    return (f'<figure class="card chart" id="{chart_id}"><h3>{html.escape(title)}</h3>'
            f'<svg viewBox="0 0 {width} {height}" width="100%" role="img" aria-label="{html.escape(title)}">'
            f'{"".join(out)}</svg></figure>')


def _sub_line(sub: str | None, x: int) -> str:
    if not sub:
        return ""
    sub = sub if len(sub) <= 34 else sub[:33] + "…"
    return f'<tspan class="sub" x="{x}" dy="14">{html.escape(sub)}</tspan>'


def charts(t: Totals) -> str:
    names = _code_names()
    cpts = sorted(c for c in t.codes if c.isdigit())
    others = sorted((c for c in t.codes if not c.isdigit() and c not in ("no code", "error")), key=lambda c: -t.codes[c])
    order = cpts + others + [c for c in ("no code", "error") if c in t.codes]
    codes = [(c, t.codes[c], "bar-code" if c.isdigit() else ("bar-error" if c == "error" else "bar-oof"),
              f"{c} — {names.get(c, c)}: {t.codes[c]:,} notes") for c in order]
    missed = [(t.missed_meta[r][0], n, f"bar-sev-{t.missed_meta[r][1]}",
               f"{t.missed_meta[r][0]} ({r}, {t.missed_meta[r][1]}): missing in {n:,} notes")
              for r, n in t.missed.most_common(12)]
    subs = {c: names[c].removeprefix("out of family: ") for c in order if c in names}
    key = ('<div class="legend chart-key"><span class="legend-item"><i class="sw bar-sev-error"></i>payer-required (error)'
           '</span><span class="legend-item"><i class="sw bar-sev-warning"></i>warning</span></div>') if missed else ""
    charts = [_bar_chart("chart-codes", "Codes suggested", codes, "No notes.", subs),
              _bar_chart("chart-missing", "Most-missed requirements", missed,
                         "No requirement is missing in any note.").replace("</figure>", key + "</figure>")]
    if t.billed:
        pairs = [(p, n, "bar-mismatch", f"billed {p.split(' → ')[0]}, documentation supports {p.split(' → ')[1]}: {n:,}")
                 for p, n in t.pairs.most_common(10)]
        charts.append(_bar_chart("chart-billed", "Billed → supported (mismatches)", pairs,
                                 "Every billed code is supported by its note."))
    return "".join(charts)


def left_out_notice(keeper: Keeper, t: Totals) -> str:
    if not keeper.dropped:
        return ""
    left = sum(keeper.dropped.values())
    detail = ", ".join(f"{n:,} {'with problems' if k == 'problem' else 'complete or with warnings only'}"
                       for k, n in sorted(keeper.dropped.items()))
    return (f'<p class="notice" id="left-out">Showing {t.total - left:,} of {t.total:,} notes, notes with problems '
            f'first; <strong>{left:,} left out</strong> ({detail}). results.jsonl and findings.csv have every note.</p>')


def run_details(summary: dict) -> str:
    rows = []
    for key, value in (summary or {}).items() if isinstance(summary, dict) else ():
        if isinstance(value, dict):
            value = value_text(value)
        if isinstance(value, (str, int, float, bool)) or value is None:
            shown = f"{value:.3f}".rstrip("0").rstrip(".") if isinstance(value, float) else value_text(value)
            rows.append(f"<tr><th>{html.escape(str(key).replace('_', ' '))}</th><td>{html.escape(shown or '–')}</td></tr>")
    return f'<table class="run">{"".join(rows)}</table>' if rows else '<p class="empty">No run summary.</p>'
