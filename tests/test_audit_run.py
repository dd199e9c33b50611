"""`run_audit` end to end on real files: a JSONL export on disk, real worker processes, a real SQLite
history, a real kill -9. Every run here checks notes with the real pipeline; nothing is mocked."""

from __future__ import annotations

import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from notecheck.audit import SourceOptions, run_audit
from notecheck.coverage.billing import evaluate_billed, load_billing_rules, parse_billed
from notecheck.record import CodeSuggestion, NoteResult, RationaleStep

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "corpora" / "sample"
REPEATS = 18           # 12 sample notes x 18 = 216 notes: enough that a kill lands mid-run
FREQUENT = "P-FREQ"    # one patient with six lumbar sessions in a year: the frequency limit fires

# (row id, sample note, billed code): the billing cases, with what the sample README says each supports.
BILLING_ROWS = [
    ("bill-ok", "01_lumbar_ilesi_fluoro_complete", "62323"),
    ("bill-higher", "05_caudal_ultrasound", "62323"),          # ultrasound: supports 62322
    ("bill-lower", "01_lumbar_ilesi_fluoro_complete", "62322"),
    ("bill-region", "02_cervical_c7t1_ilesi_fluoro", "62323"),  # supports 62321
    ("bill-family", "10_transforaminal_l5s1", "62323"),
    ("bill-mod50", "01_lumbar_ilesi_fluoro_complete", "62323-50"),
]


def _sample_texts() -> dict[str, str]:
    return {p.stem: p.read_text(encoding="utf-8") for p in sorted(SAMPLE.glob("*.txt"))}


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> Path:
    texts = _sample_texts()
    names = sorted(texts)
    rows = []
    for i in range(REPEATS * len(names)):
        name = names[i % len(names)]
        rows.append({"note_id": f"r{i:03d}", "text": texts[name], "patient_id": f"P{i % 23}",
                     "service_date": f"2024-{1 + i % 12:02d}-{1 + i % 27:02d}", "billed_code": None})
    for month in range(1, 7):
        rows.append({"note_id": f"freq-{month}", "text": texts["01_lumbar_ilesi_fluoro_complete"],
                     "patient_id": FREQUENT, "service_date": f"2024-{month * 2:02d}-10"})
    for row_id, name, billed in BILLING_ROWS:
        rows.append({"note_id": row_id, "text": texts[name], "patient_id": "P-BILL", "billed_code": billed})
    lines = [json.dumps(row) for row in rows]
    lines.insert(40, json.dumps({"note_id": "empty-one", "text": "   ", "patient_id": "P1"}))
    lines.insert(90, '{"note_id": "torn-row", "text": "unterminated')   # malformed JSON line
    path = tmp_path_factory.mktemp("export") / "notes.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _audit(export: Path, out: Path, **kw):
    err = io.StringIO()
    summary = run_audit(export, out, options=SourceOptions(), err=err, **kw)
    return summary, err.getvalue()


@pytest.fixture(scope="module")
def baseline(export, tmp_path_factory):
    """The uninterrupted, in-process (--jobs 1) audit every other run is compared with."""
    out = tmp_path_factory.mktemp("audit-jobs1")
    summary, err = _audit(export, out, jobs=1)
    return out, summary, err


def _lines(out: Path) -> list[dict]:
    with open(out / "results.jsonl", encoding="utf-8") as fh:
        return [json.loads(raw) for raw in fh]


def _expected_notes(export: Path) -> int:
    return sum(1 for raw in export.read_text(encoding="utf-8").splitlines() if raw.strip())


def test_every_note_read_is_written_once(export, baseline):
    out, summary, err = baseline
    lines = _lines(out)
    ids = [line["note_id"] for line in lines]
    assert summary.notes_read == _expected_notes(export) == len(lines) == summary.notes_written
    assert len(set(ids)) == len(ids)
    assert (f"read {summary.notes_read} notes: ok {summary.notes_ok}, error {summary.notes_error}; "
            f"written {summary.notes_read} (read == written: yes)") in err
    stats = json.loads((out / "summary.json").read_text())
    assert stats["notes_read"] == stats["notes_written"] == len(lines) and stats["read_equals_written"]
    assert stats["notes_ok"] + stats["notes_error"] == len(lines)
    assert sum(stats["by_code"].values()) + sum(stats["by_out_of_family"].values()) + stats["no_code"] == stats["notes_ok"]
    assert (out / "report.html").stat().st_size > 10_000
    assert summary.exit_status == 1   # some sample notes are incomplete on purpose


def test_a_bad_note_is_an_error_and_the_others_go_on(export, baseline):
    out, summary, err = baseline
    by_id = {line["note_id"]: line for line in _lines(out)}
    empty = by_id["empty-one"]
    assert empty["status"] == "error" and "empty-one" in empty["error"] and "empty" in empty["error"]
    torn = [line for line in by_id.values() if line["status"] == "error" and line["note_id"] != "empty-one"]
    assert len(torn) == 1 and "line 91" in torn[0]["audit"]["locator"]
    assert summary.notes_error == 2
    assert summary.notes_ok == len(by_id) - 2
    # The notes either side of the bad ones were checked normally.
    assert by_id["r039"]["status"] == by_id["r040"]["status"] == by_id["r088"]["status"] == "ok"
    rows = (out / "findings.csv").read_text(encoding="utf-8").splitlines()
    assert any(row.startswith("empty-one,P1,,note_error,error,error,") for row in rows)
    # stderr names the bad notes and never quotes one.
    assert "empty-one" in err
    for text in _sample_texts().values():
        assert max(text.splitlines(), key=len) not in err


def test_jobs_2_gives_the_same_files_as_jobs_1(export, baseline, tmp_path):
    out1, summary1, _ = baseline
    summary2, _ = _audit(export, tmp_path, jobs=2)
    assert (tmp_path / "results.jsonl").read_bytes() == (out1 / "results.jsonl").read_bytes()
    assert (tmp_path / "findings.csv").read_bytes() == (out1 / "findings.csv").read_bytes()
    assert json.loads((tmp_path / "summary.json").read_text()) == json.loads((out1 / "summary.json").read_text())
    assert summary2.notes_read == summary2.notes_written == summary1.notes_written


def _children(pid: int) -> list[int]:
    kids = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        kids += [int(k) for k in (task / "children").read_text().split()]
    return kids


def test_kill_9_midway_then_resume_ends_like_an_uninterrupted_run(export, baseline, tmp_path):
    out1, summary1, _ = baseline
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "notecheck", "audit", str(export), "--out", str(out),
                             "--jobs", "2", "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results = out / "results.jsonl"
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if results.exists() and results.read_bytes().count(b"\n") >= 64:
                break
            time.sleep(0.01)
        assert proc.poll() is None, "the audit finished before it could be killed midway"
        workers = _children(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    done_at_kill = results.read_bytes().count(b"\n")
    assert 64 <= done_at_kill < summary1.notes_written
    # Orphaned workers notice their parent is gone and exit by themselves.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(Path(f"/proc/{w}").exists() and
                                              "zombie" not in _state(w) for w in workers):
        time.sleep(0.1)
    assert not [w for w in workers if Path(f"/proc/{w}").exists() and "zombie" not in _state(w)]
    # A write cut off mid-line, as a kill during a write leaves it.
    with open(results, "ab") as fh:
        fh.write(b'{"note_id": "r100", "status": "ok", "warn')

    summary, err = _audit(export, out, jobs=1, resume=True)
    assert f"{done_at_kill} notes already done" in err and "dropped 1 incomplete" in err
    assert summary.resumed == done_at_kill
    ids = [line["note_id"] for line in _lines(out)]
    assert len(ids) == len(set(ids)) == summary1.notes_written    # no duplicates, no gaps
    assert results.read_bytes() == (out1 / "results.jsonl").read_bytes()
    assert (out / "findings.csv").read_bytes() == (out1 / "findings.csv").read_bytes()
    with sqlite3.connect(out / "history.sqlite") as db:
        assert db.execute("SELECT count(*), count(DISTINCT note_id) FROM notes").fetchone() == (len(ids), len(ids))


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split("\n")[0].lower()
    except (OSError, IndexError):
        return "zombie"


def test_reauditing_the_same_note_ids_does_not_double_count(export, baseline, tmp_path):
    out1, _, _ = baseline
    first = {line["note_id"]: line["audit"]["history_findings"] for line in _lines(out1)}
    flagged = {nid for nid, fs in first.items() for f in fs if f["id"] == "frequency_limit" and f["status"] == "missing"}
    assert {"freq-5", "freq-6"} <= flagged          # the 5th and 6th session in 12 months
    assert not {"freq-1", "freq-4"} & flagged
    # Same export, same history database, a second audit: every note id is recorded again.
    _audit(export, tmp_path, jobs=1, db_path=out1 / "history.sqlite")
    again = {line["note_id"]: line["audit"]["history_findings"] for line in _lines(tmp_path)}
    assert again == first
    with sqlite3.connect(out1 / "history.sqlite") as db:
        rows, distinct = db.execute("SELECT count(*), count(DISTINCT note_id) FROM notes").fetchone()
    assert rows == distinct == len(first)


def _by_id(out: Path) -> dict[str, dict]:
    return {line["note_id"]: line for line in _lines(out)}


def test_billed_codes_supported_or_mismatched_with_direction_and_evidence(export, baseline):
    out, _, _ = baseline
    lines = _by_id(out)
    texts = _sample_texts()

    def billing(row_id):
        line = lines[row_id]
        found = {f["id"]: f for f in line["findings"] if f["kind"] == "coding"}
        return line, line["audit"]["billing"], found

    line, info, found = billing("bill-ok")
    assert info["status"] == "supported" and found["billed_code_mismatch"]["status"] == "met"

    line, info, found = billing("bill-higher")
    assert line["code"]["cpt"] == "62322"
    mismatch = found["billed_code_mismatch"]
    assert (mismatch["status"], mismatch["severity"]) == ("missing", "error")
    assert info["direction"] == "billed_higher" and info["supported"] == "62322"
    assert info["axes"] == [{"axis": "imaging", "billed": "with_imaging", "supported": "without_imaging",
                             "direction": "higher"}]
    assert "62322" in mismatch["message"] and "billed higher" in mismatch["message"] and mismatch["query"]
    text = texts["05_caudal_ultrasound"]
    assert mismatch["evidence"] and all(text[e["start"]:e["end"]] == e["text"] for e in mismatch["evidence"])
    assert any("ultrasound" in e["text"].lower() for e in mismatch["evidence"])

    _, info, _ = billing("bill-lower")
    assert (info["direction"], info["supported"]) == ("billed_lower", "62323")
    _, info, _ = billing("bill-region")
    assert (info["direction"], info["supported"]) == ("different_region", "62321")
    _, info, found = billing("bill-family")
    assert info["direction"] == "out_of_family" and info["supported_family"] == "transforaminal"
    _, info, found = billing("bill-mod50")
    assert info["status"] == "supported"
    assert found["no_bilateral_modifier"]["status"] == "missing"
    assert "Modifier 50" in found["no_bilateral_modifier"]["message"]
    assert lines["r000"]["audit"]["billing"] is None    # no billed code, no billing finding

    stats = json.loads((out / "summary.json").read_text())
    assert {"billed": "62323", "supported": "62322", "direction": "billed_higher", "count": 1} in stats["billed_mismatch_pairs"]
    assert stats["billed"]["notes_with_billed"] == len(BILLING_ROWS)
    assert stats["billed"]["mismatch"] == 4 and stats["billed"]["supported"] == 2
    csv_text = (out / "findings.csv").read_text(encoding="utf-8")
    assert "bill-higher,P-BILL,,billed_code_mismatch,missing,error," in csv_text


def _result(cpt: str | None, family: str | None = None) -> NoteResult:
    rules = load_billing_rules()
    rationale = []
    if cpt:
        axes = rules.code_axes[cpt]
        rationale = [RationaleStep(axis="region", value=axes["region_group"], reason="r"),
                     RationaleStep(axis="delivery", value=axes["delivery"], reason="d"),
                     RationaleStep(axis="imaging", value=axes["imaging"], reason="i")]
    return NoteResult(note_id="n", status="ok", code=CodeSuggestion(cpt=cpt, out_of_family=family, rationale=rationale))


@pytest.mark.parametrize("billed, supported, direction", [
    ("62327", "62323", "billed_higher"),     # indwelling catheter not documented
    ("62321", "62320", "billed_higher"),     # imaging not documented
    ("62320", "62325", "billed_lower"),      # both the catheter and the imaging left out
    ("62323", "62326", "mixed"),             # imaging claimed, documented catheter left out
    ("62322", "62321", "different_region"),  # region wins over the imaging difference
    ("64483", "62323", "out_of_family"),
    ("99213", "62323", "out_of_family"),
])
def test_direction_comes_from_the_axes_in_billing_yaml(billed, supported, direction):
    findings, info = evaluate_billed(_result(supported), billed, load_billing_rules())
    (mismatch,) = [f for f in findings if f.id == "billed_code_mismatch"]
    assert info.direction == direction and mismatch.status == "missing" and mismatch.kind == "coding"


def test_billed_values_are_parsed_into_claim_lines():
    lines = parse_billed("cpt 62323-50, 77003; +0777T lt")
    assert [(ln.code, ln.modifiers) for ln in lines] == [("62323", ["50"]), ("77003", []), ("0777T", ["LT"])]
    findings, info = evaluate_billed(_result("62323"), "62323-RT, 77003, 0777T", load_billing_rules())
    problems = [f.message.split(":")[0] for f in findings if f.id == "billed_claim_line_not_allowed"]
    # 77003 has a rule of its own (coverage.yaml no_separate_imaging_code); 0777T lacks a documented device
    assert problems == ["62323-RT", "0777T"]
    findings, info = evaluate_billed(_result("62323"), "62323, 62321", load_billing_rules())
    assert [f.message.split(":")[0] for f in findings if f.id == "billed_claim_line_not_allowed"] == ["62323, 62321"]
    findings, info = evaluate_billed(_result("62323"), "n/a", load_billing_rules())
    assert info.status == "unreadable" and [(f.id, f.severity) for f in findings] == [("billed_code_unreadable", "warning")]
    findings, info = evaluate_billed(_result(None, "no_procedure"), "62323", load_billing_rules())
    assert info.direction == "not_supported"
    error = NoteResult(note_id="n", status="error", error="note n: empty note")
    findings, info = evaluate_billed(error, "62323", load_billing_rules())
    assert findings == [] and info.status == "not_checked"


def test_billing_yaml_covers_the_code_matrix_and_cites_a_source_for_each_rule():
    rules = load_billing_rules()
    for axis in ("delivery", "imaging"):
        assert set(rules.axes[axis]["order"]) == {axes[axis] for axes in rules.code_axes.values()}
    assert rules.axes["region_group"]["order"] is None   # regions are different sites, not more or less
    assert set(rules.axes["region_group"]["values"]) == {axes["region_group"] for axes in rules.code_axes.values()}
    assert set(rules.family_names) >= set(rules.families)
    for entry in [*rules.directions.values(), *rules.not_with_family, *rules.add_ons, rules.max_family_lines,
                  *rules.findings.values(), *rules.axes.values()]:
        assert "rules.md" in entry["source"] or "notecheck" in entry["source"], entry
    codes = [c for family in rules.families.values() for c in family]
    assert len(codes) == len(set(codes)) and not set(codes) & set(rules.code_axes)
