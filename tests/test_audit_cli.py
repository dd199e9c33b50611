"""`notecheck audit` as a user runs it: the README quick start, a CSV export with named columns, usage
errors, and the progress bar (only on a terminal)."""

from __future__ import annotations

import csv
import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from notecheck.cli import main

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "corpora" / "sample"
SCRIPT = Path(sys.executable).with_name("notecheck")


def _notecheck() -> list[str]:
    # The console script the README's quick start runs, when this venv has it.
    return [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "notecheck"]


def _longest_lines() -> list[str]:
    return [max(p.read_text(encoding="utf-8").splitlines(), key=len) for p in sorted(SAMPLE.glob("*.txt"))]


def test_quick_start_audits_the_sample_folder(tmp_path):
    out = tmp_path / "audit"
    run = subprocess.run([*_notecheck(), "audit", "corpora/sample", "--out", str(out)], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 1, run.stderr           # some sample notes are incomplete on purpose
    assert "read 12 notes: ok 12, error 0; written 12 (read == written: yes)" in run.stderr
    assert run.stderr.splitlines()[0].startswith("folder ")   # what the source reader picked
    assert "Traceback" not in run.stderr and run.stdout == ""
    assert "note/s" not in run.stderr                 # no progress bar when stderr is not a terminal
    for line in _longest_lines():
        assert line not in run.stderr
    lines = (out / "results.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 12
    assert {json.loads(line)["note_id"] for line in lines} == {p.stem for p in SAMPLE.glob("*.txt")}
    for name in ("findings.csv", "summary.json", "report.html", "history.sqlite"):
        assert (out / name).stat().st_size > 0
    assert f"open {out / 'report.html'}" in run.stderr


def _csv_export(path: Path) -> Path:
    notes = sorted(SAMPLE.glob("*.txt"))
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["Doc Key", "MRN#", "Visit", "Claim CPT", "Narrative"])
        for i, note in enumerate(notes):
            writer.writerow([f"doc{i}", f"M{i % 3}", f"2024-0{1 + i % 9}-15", "62323",
                             note.read_text(encoding="utf-8")])
        writer.writerow(["doc-empty", "M1", "2024-05-01", "62323", ""])
    return path


def test_csv_export_with_named_columns(tmp_path, capsys):
    source = _csv_export(tmp_path / "notes.csv")
    out = tmp_path / "out"
    status = main(["audit", str(source), "--out", str(out), "--text-col", "Narrative", "--id-col", "Doc Key",
                   "--patient-col", "MRN#", "--date-col", "Visit", "--billed-col", "Claim CPT", "--jobs", "1"])
    err = capsys.readouterr().err
    assert status == 1
    assert "text=Narrative" in err and "billed=Claim CPT" in err
    assert "read 13 notes: ok 12, error 1; written 13 (read == written: yes)" in err
    assert "notecheck: error: note doc-empty" in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["billed"]["notes_with_billed"] == 13 and summary["billed"]["not_checked"] == 1
    assert summary["billed"]["mismatch"] >= 4   # cervical, thoracic, ultrasound, landmark, catheter notes
    first = json.loads((out / "results.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert first["audit"]["patient_id"] == "M0" and first["audit"]["service_date"] == "2024-01-15"

    # --quiet: no per-note error lines, the closing counts stay.
    status = main(["audit", str(source), "--out", str(tmp_path / "quiet"), "--text-col", "Narrative",
                   "--id-col", "Doc Key", "--jobs", "1", "--quiet"])
    err = capsys.readouterr().err
    assert status == 1 and "notecheck: error" not in err and "read 13 notes" in err


@pytest.mark.parametrize("args, message", [
    (["audit", "no/such/export", "--out", "{tmp}/o"], "no such file or folder"),
    (["audit", "{csv}", "--out", "{tmp}/o", "--text-col", "nope"], "nope"),
    (["audit", "{csv}", "--out", "{tmp}/o", "--jobs", "0"], "must be positive"),
    (["audit", "{csv}"], "--out"),
    (["audit", "{csv}", "--out", "{tmp}/o", "--text-col", "Narrative", "--db", "{tmp}"], "history database"),
])
def test_usage_errors_exit_2(tmp_path, capsys, args, message):
    source = _csv_export(tmp_path / "notes.csv")
    argv = [a.format(tmp=tmp_path, csv=source) for a in args]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "o" / "results.jsonl").exists()


def test_progress_bar_only_on_a_terminal(tmp_path):
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))   # a terminal has a size
    proc = subprocess.Popen([*_notecheck(), "audit", "corpora/sample", "--out", str(tmp_path / "o"), "--jobs", "1"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    screen = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:   # EIO: the child closed the terminal
            break
        if not chunk:
            break
        screen += chunk
    os.close(master)
    assert proc.wait(timeout=300) == 1
    text = screen.decode("utf-8", "replace")
    assert "note/s" in text and "12/12" in text
    assert "read 12 notes" in text
