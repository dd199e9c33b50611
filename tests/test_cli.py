"""CLI plumbing and the text report.

Most tests inject a fake checker through `main(argv, checker_factory=...)`, so they pin streaming,
exit codes and PHI-safe stderr without the NLP. The `real_checker` tests run the actual engine and
skip only while `NoteChecker.check` is still a NotImplementedError stub.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from notecheck import __version__
from notecheck.cli import main
from notecheck.record import CodeNote, CodeSuggestion, Evidence, Finding, NoteResult, RationaleStep
from notecheck.render import render_text

REPO = Path(__file__).resolve().parent.parent
MARKER = "QUOKKAZEBRA"  # appears in every note; must never reach stderr
LUMBAR_NOTE = f"Patient {MARKER}. L4-L5 interlaminar epidural steroid injection under fluoroscopic guidance.\n"


# ---------------------------------------------------------------- fakes and helpers

def finding(fid: str, status: str, severity: str = "error", **kw) -> Finding:
    return Finding(id=fid, title=fid.title(), status=status, severity=severity,
                   message=f"{fid} message", source="rules.md", **kw)


def ok_result(note_id: str, cpt: str | None = "62323", missing_error: bool = False) -> NoteResult:
    findings = [finding("level", "met")]
    if missing_error:
        findings.append(finding("consent", "missing", query="Was consent obtained?"))
    return NoteResult(note_id=note_id, status="ok", code=CodeSuggestion(cpt=cpt), findings=findings)


class FakeChecker:
    """Returns canned results by note id (a complete 62323 by default)."""

    def __init__(self, results: dict[str, NoteResult] | None = None, explode: set[str] = frozenset()):
        self.results = results or {}
        self.explode = explode
        self.calls: list[tuple[str, str]] = []

    def check(self, text: str, note_id: str = "note") -> NoteResult:
        self.calls.append((note_id, text))
        if note_id in self.explode:
            raise ValueError(f"cannot parse {text!r}")  # message quotes the note: must not leak
        return self.results.get(note_id) or ok_result(note_id)


class Factory:
    def __init__(self, checker: FakeChecker | None = None):
        self.checker = checker or FakeChecker()
        self.builds = 0

    def __call__(self) -> FakeChecker:
        self.builds += 1
        return self.checker


def note_file(tmp_path: Path, name: str, data: bytes | str = LUMBAR_NOTE) -> str:
    path = tmp_path / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return str(path)


def run(capsys, argv: list[str], factory=None) -> tuple[int, str, str]:
    code = main(argv, checker_factory=factory or Factory())
    out, err = capsys.readouterr()
    assert "Traceback" not in err and MARKER not in err
    return code, out, err


def jsonl(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def run_module(args: list[str], stdin: bytes | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "notecheck", *args], input=stdin,
                          capture_output=True, env=env, timeout=300)
    stderr = proc.stderr.decode("utf-8", "replace")
    assert "Traceback" not in stderr and MARKER not in stderr
    return proc


# ---------------------------------------------------------------- check: streaming and exit codes

def test_jsonl_one_object_per_note_with_file_stem_ids(tmp_path, capsys):
    factory = Factory()
    paths = [note_file(tmp_path, "a.txt"), note_file(tmp_path, "visit-2.note")]
    code, out, _ = run(capsys, ["check", *paths, "--format", "jsonl"], factory)
    assert code == 0
    assert [r["note_id"] for r in jsonl(out)] == ["a", "visit-2"]
    assert factory.checker.calls == [("a", LUMBAR_NOTE), ("visit-2", LUMBAR_NOTE)]
    assert factory.builds == 1  # built once for all notes


@pytest.mark.parametrize(
    "result",
    [ok_result("a", missing_error=True), ok_result("a", cpt=None),
     NoteResult(note_id="a", status="error", error="note a: not an epidural note")],
    ids=["missing-required", "no-code", "engine-error"],
)
def test_incomplete_note_exits_1(tmp_path, capsys, result):
    factory = Factory(FakeChecker({"a": result}))
    paths = [note_file(tmp_path, "a.txt"), note_file(tmp_path, "b.txt")]
    code, out, _ = run(capsys, ["check", *paths, "--format", "jsonl"], factory)
    assert code == 1
    assert len(jsonl(out)) == 2


def test_missing_warning_alone_keeps_the_note_complete(tmp_path, capsys):
    result = ok_result("a")
    result.findings.append(finding("volume", "missing", severity="warning"))
    code, _, _ = run(capsys, ["check", note_file(tmp_path, "a.txt")], Factory(FakeChecker({"a": result})))
    assert code == 0


def test_reading_errors_exit_2_and_never_stop_the_good_notes(tmp_path, capsys):
    factory = Factory(FakeChecker({"good": ok_result("good", missing_error=True)}))
    paths = [
        str(tmp_path / "missing.txt"),
        note_file(tmp_path, "empty.txt", b""),
        note_file(tmp_path, "blank.txt", b"  \n\t \n"),
        note_file(tmp_path, "scan.bin", b"\x00\x01" + LUMBAR_NOTE.encode()),
        note_file(tmp_path, "good.txt"),
    ]
    code, out, err = run(capsys, ["check", *paths, "--format", "jsonl"], factory)
    assert code == 2  # reading error wins over the incomplete good note
    by_id = {r["note_id"]: r for r in jsonl(out)}
    assert list(by_id) == ["missing", "empty", "blank", "scan", "good"]
    assert "file not found" in by_id["missing"]["error"]
    assert "empty note" in by_id["empty"]["error"] and "empty note" in by_id["blank"]["error"]
    assert "binary file, not a text note" in by_id["scan"]["error"]
    assert by_id["good"]["status"] == "ok"
    for note_id in ("missing", "empty", "blank", "scan"):
        assert by_id[note_id]["status"] == "error"
        assert f"note {note_id}:" in err


def test_checker_is_not_built_when_no_note_is_readable(tmp_path, capsys):
    factory = Factory()
    code, _, _ = run(capsys, ["check", str(tmp_path / "nope.txt"), note_file(tmp_path, "e.txt", b"")],
                     factory)
    assert code == 2 and factory.builds == 0


def test_non_utf8_note_is_checked_and_carries_the_warning(tmp_path, capsys):
    canned = ok_result("latin")
    canned.warnings.append("engine warning")
    factory = Factory(FakeChecker({"latin": canned}))
    code, out, err = run(capsys, ["check", note_file(tmp_path, "latin.txt", b"caf\xe9 L4-L5 ILESI"),
                                  "--format", "jsonl"], factory)
    assert code == 0
    [result] = jsonl(out)
    assert result["status"] == "ok"
    assert result["warnings"] == ["not valid UTF-8; decoded with replacement characters", "engine warning"]
    assert factory.checker.calls == [("latin", "caf\ufffd L4-L5 ILESI")]
    assert canned.warnings == ["engine warning"]  # the checker's own object is not mutated
    assert "not valid UTF-8" in err


def test_2mb_note_is_too_large(tmp_path, capsys):
    path = note_file(tmp_path, "big.txt", LUMBAR_NOTE * 25_000)
    code, out, err = run(capsys, ["check", path, "--format", "jsonl"])
    assert code == 2
    [result] = jsonl(out)
    assert result["status"] == "error" and "note too large" in result["error"]
    assert "note big: note too large" in err


def test_max_bytes_overrides_the_limit(tmp_path, capsys):
    path = note_file(tmp_path, "n.txt")
    code, out, _ = run(capsys, ["check", path, "--max-bytes", "10", "--format", "jsonl"])
    assert code == 2 and "note too large" in jsonl(out)[0]["error"]
    assert run(capsys, ["check", path, "--max-bytes", str(len(LUMBAR_NOTE))])[0] == 0


def test_engine_exception_becomes_an_error_result_without_text_or_traceback(tmp_path, capsys):
    factory = Factory(FakeChecker(explode={"a"}))
    paths = [note_file(tmp_path, "a.txt"), note_file(tmp_path, "b.txt")]
    code, out, err = run(capsys, ["check", *paths, "--format", "jsonl"], factory)
    assert code == 1
    a, b = jsonl(out)
    assert a["status"] == "error"
    assert a["error"] == "internal error while checking note a: ValueError"
    assert b["status"] == "ok"
    assert "internal error while checking note a: ValueError" in err


def test_checker_that_fails_to_start_is_reported_once(tmp_path, capsys):
    def broken_factory():
        raise OSError("spaCy model not installed")

    paths = [note_file(tmp_path, "a.txt"), note_file(tmp_path, "b.txt")]
    code, out, err = run(capsys, ["check", *paths, "--format", "jsonl"], broken_factory)
    assert code == 1
    assert [r["status"] for r in jsonl(out)] == ["error", "error"]
    assert err.count("could not start the checker") == 1 and "spaCy model not installed" in err


def test_json_format_prints_one_array(tmp_path, capsys):
    paths = [note_file(tmp_path, "a.txt"), str(tmp_path / "gone.txt")]
    code, out, _ = run(capsys, ["check", *paths, "--format", "json"])
    assert code == 2
    results = json.loads(out)
    assert [r["note_id"] for r in results] == ["a", "gone"]
    NoteResult.model_validate(results[0])


def test_text_format_is_the_default(tmp_path, capsys):
    factory = Factory(FakeChecker({"b": ok_result("b", missing_error=True)}))
    paths = [note_file(tmp_path, "a.txt"), note_file(tmp_path, "b.txt"), str(tmp_path / "c.txt")]
    code, out, _ = run(capsys, ["check", *paths], factory)
    assert code == 2
    assert "== a: COMPLETE" in out and "== b: INCOMPLETE" in out and "== c: ERROR" in out
    assert "Ask: Was consent obtained?" in out


def test_stdin_dash(monkeypatch, capsys):
    import io

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(LUMBAR_NOTE.encode())))
    factory = Factory()
    code, out, _ = run(capsys, ["check", "-", "--format", "jsonl"], factory)
    assert code == 0 and jsonl(out)[0]["note_id"] == "stdin"
    assert factory.checker.calls == [("stdin", LUMBAR_NOTE)]


# ---------------------------------------------------------------- usage, version, schema

@pytest.mark.parametrize(
    "argv",
    [[], ["check"], ["frobnicate"], ["check", "x.txt", "--format", "xml"],
     ["check", "x.txt", "--max-bytes", "0"], ["check", "x.txt", "--max-bytes", "lots"]],
)
def test_usage_errors_exit_2(capsys, argv):
    assert main(argv, checker_factory=Factory()) == 2
    assert "usage:" in capsys.readouterr().err


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"notecheck {__version__}"


def test_schema_is_the_note_result_json_schema(capsys):
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert {"note_id", "record", "code", "findings"} <= set(schema["properties"])
    assert schema == NoteResult.model_json_schema()


# ---------------------------------------------------------------- python -m notecheck (no engine needed)

def test_module_bad_inputs_exit_2_with_clean_stderr(tmp_path):
    paths = [note_file(tmp_path, "big.txt", LUMBAR_NOTE * 25_000), note_file(tmp_path, "bin.dat", b"\x00" * 10),
             note_file(tmp_path, "empty.txt", b""), str(tmp_path / "missing.txt")]
    proc = run_module(["check", *paths, "--format", "jsonl"])
    assert proc.returncode == 2
    results = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["status"] for r in results] == ["error"] * 4
    assert b"note too large" in proc.stderr


def test_module_schema():
    proc = run_module(["schema"])
    assert proc.returncode == 0 and "note_id" in json.loads(proc.stdout)["properties"]


# ---------------------------------------------------------------- real engine

@pytest.fixture(scope="module")
def real_checker():
    from notecheck.engine import NoteChecker

    checker = NoteChecker()
    try:
        checker.check(LUMBAR_NOTE, "probe")
    except NotImplementedError:
        pytest.skip("NoteChecker.check is still a stub")
    return checker


def expected_exit(result: dict) -> int:
    return 0 if NoteResult.model_validate(result).complete else 1


def test_real_engine_lumbar_note_jsonl(tmp_path, capsys, real_checker):
    path = note_file(tmp_path, "lumbar-ilesi.txt")
    code, out, _ = run(capsys, ["check", path, "--format", "jsonl"], lambda: real_checker)
    [result] = jsonl(out)
    assert result["note_id"] == "lumbar-ilesi" and result["status"] == "ok"
    assert result["record"]["region"] == "lumbar"
    for ev in result["record"]["evidence"].get("levels", []):
        assert LUMBAR_NOTE[ev["start"]:ev["end"]] == ev["text"]  # offsets index the note as read
    assert code == expected_exit(result)


def test_real_engine_stdin_via_module(real_checker):
    proc = run_module(["check", "-", "--format", "jsonl"], stdin=LUMBAR_NOTE.encode())
    [result] = [json.loads(line) for line in proc.stdout.splitlines()]
    assert result["note_id"] == "stdin" and result["status"] == "ok"
    assert proc.returncode == expected_exit(result)


def test_real_engine_bad_file_does_not_stop_good_one(tmp_path, real_checker):
    paths = [str(tmp_path / "missing.txt"), note_file(tmp_path, "good.txt")]
    proc = run_module(["check", *paths, "--format", "jsonl"])
    missing, good = [json.loads(line) for line in proc.stdout.splitlines()]
    assert missing["status"] == "error" and "file not found" in missing["error"]
    assert good["note_id"] == "good" and good["status"] == "ok"
    assert proc.returncode == 2


def test_real_engine_text_report(tmp_path, capsys, real_checker):
    code, out, _ = run(capsys, ["check", note_file(tmp_path, "n.txt")], lambda: real_checker)
    assert out.startswith("== n: ") and "Findings:" in out and code in (0, 1)


# ---------------------------------------------------------------- render_text

def test_render_code_rationale_notes_and_findings():
    note = "Procedure: L4-L5 interlaminar ESI. " + "x" * 100
    long_span = Evidence(start=35, end=135, text=note[35:135])
    result = NoteResult(
        note_id="n1", status="ok",
        code=CodeSuggestion(
            cpt="62323", modifiers=["XS"],
            rationale=[RationaleStep(axis="region", value="lumbar_sacral", reason="lumbar level",
                                     evidence=[Evidence(start=11, end=16, text="L4-L5")])],
            notes=[CodeNote(id="NOTE-KX", message="No KX.", source="rules.md §2")],
        ),
        findings=[finding("level", "met", evidence=[long_span]),
                  finding("consent", "missing", query="Was consent obtained?"),
                  finding("scale", "not_applicable", severity="warning")],
        warnings=["not valid UTF-8; decoded with replacement characters"],
    )
    text = render_text(result, note)
    assert text.splitlines()[0] == "== n1: INCOMPLETE"
    assert "Code: 62323" in text and "Modifiers: XS" in text
    assert 'region: lumbar_sacral - lumbar level' in text and '"L4-L5" [11-16]' in text
    assert "Note NOTE-KX: No KX. (rules.md §2)" in text
    assert "[MISSING] error: Consent" in text and "Ask: Was consent obtained?" in text
    assert "[met] error: Level" in text and "[n/a] warning: Scale" in text
    assert '..." [35-135]' in text and "x" * 61 not in text  # long quotes are truncated
    assert "Warning: not valid UTF-8" in text
    assert "span does not match" not in text


def test_render_flags_evidence_that_does_not_match_the_note():
    result = ok_result("n")
    result.findings[0].evidence.append(Evidence(start=0, end=5, text="L4-L5"))
    assert "span does not match" in render_text(result, "L5-S1 caudal")


@pytest.mark.parametrize(
    "code, expected",
    [(CodeSuggestion(out_of_family="64483 (transforaminal)"),
      "none of 62320-62327 applies: 64483 (transforaminal)"),
     (CodeSuggestion(), "no supportable code"), (None, "no supportable code")],
)
def test_render_without_a_code(code, expected):
    result = NoteResult(note_id="n", status="ok", code=code)
    assert expected in render_text(result, None)


def test_render_error():
    result = NoteResult(note_id="n", status="error", error="note n: empty note")
    assert render_text(result, None) == "== n: ERROR\n  ERROR: note n: empty note"
