"""report.html, opened from disk in Debian's headless chromium driven by Playwright (no browser download,
no mocks): sorting, filtering, the note view's highlights, escaping, a screenshot, and that the page asks
for nothing over the network. The data is a real `run_audit` over a CSV export of corpora/sample (with
patients, dates and billed codes), so the report is checked on the lines the audit really writes."""

from __future__ import annotations

import csv
import io
import json
import os
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image  # the test extra installs Pillow and Playwright: a missing one fails, never skips
from playwright import sync_api as playwright_api

from notecheck.audit.report import write_report
from notecheck.audit.runner import run_audit
from notecheck.audit.sources import SourceOptions

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = Path(os.environ.get("NOTECHECK_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
# Text that must come out as text: a live <script> or handler here would mean the report runs note content.
HOSTILE = "\n<script>window.__pwned = 1</script></script><img src=x onerror=\"window.__pwned = 2\"> &amp; <!--\n"
EMOJI_PREFIX = "\U0001F642 Pt seen \U0001F4CB\n"  # astral characters: 2 UTF-16 units, 1 Python character
LUMBAR = ("01", "03", "04", "05", "08", "09")  # one patient's lumbar sessions: more than the yearly limit


@pytest.fixture(scope="module")
def audit_dir(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """Audit a CSV export: the sample notes, one with hostile markup after emoji, an empty row, one
    billed-code mismatch (62323 billed for a 62322 note). Returns the --out folder and the texts."""
    root = tmp_path_factory.mktemp("audit")
    rows = []
    for i, path in enumerate(sorted((REPO / "corpora" / "sample").glob("*.txt"))):
        text = path.read_text(encoding="utf-8")
        lumbar = path.name[:2] in LUMBAR
        rows.append({"note_id": path.stem, "patient_id": "P01" if lumbar else f"P{i + 2:02d}",
                     "service_date": f"2025-{i + 1:02d}-15", "billed_code": "62323" if path.name[:2] in ("01", "04") else "",
                     "note_text": text})
    first = rows[0]["note_text"]
    rows.append({"note_id": "zz_hostile_markup", "patient_id": "P99", "service_date": "2025-12-01", "billed_code": "",
                 "note_text": EMOJI_PREFIX + first[: len(first) // 2] + HOSTILE + first[len(first) // 2:]})
    rows.append({"note_id": "zz_unreadable_note", "patient_id": "P98", "service_date": "", "billed_code": "", "note_text": ""})
    export = root / "notes.csv"
    with open(export, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    out = root / "out"
    run_audit(export, out, options=SourceOptions(), jobs=1, quiet=True, err=io.StringIO())
    return out, {r["note_id"]: r["note_text"] for r in rows}


@pytest.fixture(scope="module")
def audit_notes(audit_dir) -> list[tuple[dict, str | None]]:
    out, texts = audit_dir
    lines = [json.loads(line) for line in (out / "results.jsonl").read_text(encoding="utf-8").splitlines()]
    return [(line, texts[line["note_id"]] if line["status"] == "ok" else None) for line in lines]


@pytest.fixture(scope="module")
def summary(audit_dir) -> dict:
    return json.loads((audit_dir[0] / "summary.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def report(audit_dir) -> Path:
    return audit_dir[0] / "report.html"


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        # CI (.ci/run installs it) must run the real browser; a developer's machine without it skips loudly.
        message = f"{CHROMIUM} not found: apt-get install -y chromium (as .ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Page:
    """A fresh browser context on one report file, recording every request and CSP violation."""

    def __init__(self, browser, path: Path, viewport=(1400, 1000)):
        self.url = path.as_uri()
        self.context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
        self.page = self.context.new_page()
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.page.on("request", lambda req: self.requests.append(req.url))
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.add_init_script("window.__blocked = []; document.addEventListener('securitypolicyviolation',"
                                  " e => window.__blocked.push(e.blockedURI));")
        self.page.goto(self.url)

    def column(self, key: str) -> list[str]:
        index = self.page.eval_on_selector_all("#notes th", "(ths, k) => ths.findIndex(th => th.dataset.key === k)", key)
        return self.page.eval_on_selector_all(
            "#notes tbody tr", "(rows, i) => rows.filter(r => !r.hidden).map(r => r.cells[i].textContent)", index)

    def visible_ids(self) -> list[str]:
        return self.page.eval_on_selector_all("#notes tbody tr", "rows => rows.filter(r => !r.hidden).map(r => r.dataset.id)")

    def open_note(self, note_id: str) -> None:
        self.page.click(f'#notes tbody tr[data-id="{note_id}"]')
        self.page.wait_for_selector("#detail:not([hidden])")

    def marks(self) -> list[dict]:
        return self.page.eval_on_selector_all("#note-text mark", """ms => ms.map(m => ({
            start: +m.dataset.start, end: +m.dataset.end, text: m.textContent, labels: m.dataset.labels}))""")


@pytest.fixture
def page(browser, report):
    p = Page(browser, report)
    yield p
    assert not p.errors, p.errors
    p.context.close()


def _missing_ids(line: dict) -> set[str]:
    every = line["findings"] + line["audit"].get("history_findings", [])
    return {f["id"] for f in every if f["status"] == "missing" and not f["id"].startswith("billed_code")}


def _mismatch(line: dict) -> bool:
    return (line["audit"].get("billing") or {}).get("status") == "mismatch"


def _history(line: dict) -> bool:
    return any(f["status"] == "missing" for f in line["audit"].get("history_findings", []))


def _is_problem(line: dict) -> bool:
    return not line["audit"]["complete"] or _mismatch(line) or _history(line)


def test_report_asks_nothing_of_the_network(page, report):
    page.page.click("#notes tbody tr")
    page.page.wait_for_selector("#detail:not([hidden])")
    page.page.wait_for_timeout(200)
    assert page.requests == [page.url]
    assert page.page.evaluate("window.__blocked") == []
    assert page.page.evaluate("performance.getEntriesByType('resource').length") == 0

    class Refs(HTMLParser):
        found: list = []

        def handle_starttag(self, tag, attrs):
            self.found += [(tag, name) for name, value in attrs if name in ("src", "href", "srcset", "action")]

    refs = Refs()
    refs.feed(report.read_text(encoding="utf-8"))
    assert refs.found == []  # nothing to fetch, and the hostile <img src> never became a tag
    assert not re.search(r"@import|url\(", report.read_text(encoding="utf-8"))


def test_headline_numbers_and_charts_agree_with_summary(page, audit_notes, summary):
    kpi = lambda key: page.page.inner_text(f'[data-kpi="{key}"] .kpi-value')  # noqa: E731
    assert kpi("notes") == str(summary["notes_written"]) == str(len(audit_notes))
    assert kpi("complete") == f"{100 * summary['notes_complete'] / summary['notes_written']:.0f}%"
    assert kpi("error") == str(summary["notes_error"]) == "1"
    assert kpi("mismatch") == str(summary["billed"]["mismatch"]) == "1"
    history = sum(_history(line) for line, _ in audit_notes)
    if history:
        assert kpi("history") == str(history)

    expected = dict(summary["by_code"], **summary["by_out_of_family"], error=summary["notes_error"])
    if summary["no_code"]:
        expected["no code"] = summary["no_code"]
    bars = page.page.eval_on_selector_all("#chart-codes .bar-row", """gs => gs.map(g => [
        g.querySelector('.bar-label').firstChild.textContent, +g.querySelector('.bar-value').textContent])""")
    assert dict(bars) == expected
    missed = {fid for line, _ in audit_notes for fid in _missing_ids(line)}
    assert page.page.locator("#chart-missing .bar-row").count() == min(12, len(missed))
    pairs = page.page.eval_on_selector_all("#chart-billed .bar-row .bar-label", "ts => ts.map(t => t.textContent)")
    assert pairs == [f"{p['billed']} → {p['supported']}" for p in summary["billed_mismatch_pairs"]] == ["62323 → 62322"]


def test_clicking_a_header_sorts_the_table(page):
    before = [int(v) for v in page.column("missing")]
    assert before != sorted(before, reverse=True)  # the click below has something to change
    page.page.click('#notes th[data-key="missing"] button')
    after = [int(v) for v in page.column("missing")]
    assert after == sorted(before, reverse=True) and after != before
    assert page.page.get_attribute('#notes th[data-key="missing"]', "aria-sort") == "descending"
    page.page.click('#notes th[data-key="missing"] button')
    assert [int(v) for v in page.column("missing")] == sorted(before)

    page.page.click('#notes th[data-key="date"] button')
    dates = [d for d in page.column("date") if d != "–"]
    assert dates == sorted(dates) and len(dates) == len(page.visible_ids()) - 1


def test_filter_box_and_dropdowns_hide_rows(page, audit_notes):
    every = [r["note_id"] for r, _ in audit_notes]
    assert page.visible_ids() == every
    page.page.fill("#filter", "caudal")
    assert page.visible_ids() == [i for i in every if "caudal" in i] and len(page.visible_ids()) == 2
    assert page.page.inner_text("#shown-count").startswith(f"2 of {len(every)}")
    page.page.fill("#filter", "pain_score_post")  # a missing requirement's id finds the notes that miss it
    assert page.visible_ids() == [r["note_id"] for r, _ in audit_notes if "pain_score_post" in _missing_ids(r)]
    page.page.fill("#filter", "")
    page.page.select_option("#status-filter", "error")
    assert page.visible_ids() == ["zz_unreadable_note"]
    page.page.select_option("#status-filter", "mismatch")
    assert page.visible_ids() == ["04_lumbar_ilesi_landmark_allcaps"]
    page.page.select_option("#status-filter", "")
    page.page.select_option("#code-filter", "62323")
    assert page.visible_ids() == [r["note_id"] for r, _ in audit_notes if (r["code"] or {}).get("cpt") == "62323"]
    page.page.fill("#filter", "no-such-note")
    assert page.visible_ids() == [] and page.page.is_visible("#no-match")


def test_note_view_highlights_evidence_beside_findings(page, audit_notes, tmp_path):
    result, text = next(pair for pair in audit_notes if pair[0]["note_id"] == "11_lumbar_ilesi_missing_consent_postpain")
    page.open_note(result["note_id"])
    assert page.page.inner_text("#d-title") == result["note_id"]
    assert page.page.evaluate("document.getElementById('note-text').textContent") == text
    marks = page.marks()
    assert len(marks) > 20
    for m in marks:
        assert m["text"] == text[m["start"]:m["end"]]
    # every evidence span is highlighted whole: the marks inside it add up to exactly its text
    spans = [ev for evs in result["record"]["evidence"].values() for ev in evs]
    spans += [ev for f in result["findings"] for ev in f["evidence"]]
    for ev in spans:
        inside = [m for m in marks if ev["start"] <= m["start"] and m["end"] <= ev["end"]]
        assert "".join(m["text"] for m in inside) == ev["text"] == text[ev["start"]:ev["end"]]

    listed = page.page.eval_on_selector_all("#findings li.status-missing", "ls => ls.map(l => l.dataset.fid)")
    assert set(listed) == _missing_ids(result) == {"consent", "pain_score_post"}
    every = result["findings"] + result["audit"]["history_findings"]
    assert page.page.locator("#findings li.finding").count() == len(every)

    page.page.hover("#note-text mark >> nth=0")
    assert page.page.is_visible("#tip")
    assert page.page.inner_text("#tip").split("\n") == marks[0]["labels"].split("\n")

    # clicking a finding marks its own evidence in the text
    met = next(f for f in result["findings"] if f["status"] == "met" and f["evidence"])
    page.page.click(f'#findings li[data-fid="{met["id"]}"] .f-title')
    focused = page.page.eval_on_selector_all("#note-text mark.focus", "ms => ms.map(m => [+m.dataset.start, +m.dataset.end])")
    assert focused and all(any(e["start"] <= s and t <= e["end"] for e in met["evidence"]) for s, t in focused)

    shot = tmp_path / "note_view.png"
    page.page.screenshot(path=str(shot))
    _assert_not_blank(shot)
    page.page.keyboard.press("Escape")
    assert page.page.is_hidden("#detail")


def test_hostile_note_text_stays_text_and_offsets_survive_emoji(page, audit_notes):
    result, text = next(pair for pair in audit_notes if pair[0]["note_id"] == "zz_hostile_markup")
    assert page.page.evaluate("window.__pwned") is None
    page.open_note("zz_hostile_markup")
    assert page.page.evaluate("window.__pwned") is None
    assert page.page.evaluate("document.getElementById('note-text').textContent") == text
    assert page.page.locator("#note-text script, #note-text img").count() == 0
    marks = page.marks()
    assert marks and all(m["text"] == text[m["start"]:m["end"]] for m in marks)
    assert min(m["start"] for m in marks) >= len(EMOJI_PREFIX)


def test_unreadable_note_shows_its_error(page, audit_notes):
    page.open_note("zz_unreadable_note")
    assert "zz_unreadable_note" in page.page.inner_text("#d-alerts")
    assert page.page.locator("#note-text mark").count() == 0
    page.page.click("#d-prev")  # the previous row opens; no error on the way
    assert page.page.inner_text("#d-title") == "zz_hostile_markup"


def test_whole_page_screenshot_is_not_blank(page, tmp_path):
    shot = tmp_path / "report.png"
    page.page.screenshot(path=str(shot), full_page=True)
    _assert_not_blank(shot)


def test_over_max_notes_problem_notes_come_first(browser, tmp_path, audit_notes, summary):
    path = tmp_path / "small" / "report.html"
    write_report(path, summary, iter(audit_notes), max_notes=4)
    p = Page(browser, path)
    try:
        shown = p.visible_ids()
        assert len(shown) == 4
        problems = [r["note_id"] for r, _ in audit_notes if _is_problem(r)]
        assert len(problems) > 4 and shown == problems[:4]
        assert f"{len(audit_notes) - 4} left out" in p.page.inner_text("#left-out")
        assert p.page.inner_text('[data-kpi="notes"] .kpi-value') == str(len(audit_notes))  # counts cover all
        assert not p.errors
    finally:
        p.context.close()


def test_bad_result_lines_and_spans_never_break_the_report(tmp_path, audit_notes):
    result, text = audit_notes[0]
    skewed = json.loads(json.dumps(result))
    skewed["note_id"] = "skewed"
    skewed["findings"][0]["evidence"] = [{"start": 5, "end": 10 ** 6, "text": "x"},
                                         {"start": 0, "end": 4, "text": "not what the note says"}, "junk"]
    path = tmp_path / "report.html"
    write_report(path, None, [(skewed, text), ("not a dict", None), ({"status": "ok"}, "text"), (result, None)])
    page = path.read_text(encoding="utf-8")
    data = json.loads(re.search(r'<script type="application/json" id="nc-data">(.*?)</script>', page, re.S).group(1))
    assert [n["id"] for n in data["notes"]] == ["skewed", "line 2", "line 3", result["note_id"]]
    finding = next(f for f in data["notes"][0]["findings"] if f["id"] == skewed["findings"][0]["id"])
    assert finding["ev"] == []  # spans that do not index the text are dropped, not drawn in the wrong place
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]  # the atomic write left no temp file


def _assert_not_blank(png: Path) -> None:
    with Image.open(png) as im:
        rgb = im.convert("RGB").resize((im.width // 2, im.height // 2))
        colours = rgb.getcolors(maxcolors=1 << 20)
    assert colours is not None
    commonest = max(n for n, _ in colours)
    assert len(colours) > 50 and commonest < 0.9 * rgb.width * rgb.height
