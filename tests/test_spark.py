"""The Spark engine against a real local-mode Spark (local[2]) and the real local audit.

The parity export holds the held-out test corpus, the sample notes and part of dev (about 240 notes),
spread over patients and dates so that every cross-encounter rule fires both ways (sessions over the
frequency limit, at the 12-month boundary, two regions on one day, repeats with and without a documented
response), plus rows that cannot be notes. Spark's results must equal `notecheck audit`'s note for note:
results line, findings and summary.

These tests need Java 17+ and the `spark` extra (both part of the README's install and of .ci/run).
Without Java they are skipped, saying so, except under CI, where they fail: CI cannot pass them by
skipping.
"""

from __future__ import annotations

import csv
import json
import os
import random
import subprocess
import sys
import venv
from pathlib import Path

import pytest

pyarrow_dataset = pytest.importorskip("pyarrow.dataset", reason="pip install 'notecheck[spark]'")

from notecheck.audit import SourceOptions, run_audit  # noqa: E402
from notecheck.audit.outputs import FINDINGS_COLUMNS  # noqa: E402
from notecheck.distributed.spark import audit_dataframe, audit_path, explode_findings, summarize  # noqa: E402
from notecheck.distributed.spark_session import get_session, java_version  # noqa: E402

if (java_version() or 0) < 17:
    if os.environ.get("CI"):
        raise RuntimeError("the Spark tests need a Java 17+ runtime (.ci/run installs openjdk-17-jre-headless)")
    pytest.skip("no Java 17+ runtime: the Spark tests are skipped (CI installs one and runs them)",
                allow_module_level=True)

REPO = Path(__file__).resolve().parents[1]
CORPORA = REPO / "corpora"
SHARED_SUMMARY_KEYS_EXCLUDED = {"source", "engine"}


def _notes() -> list[tuple[str, str]]:
    paths = (sorted((CORPORA / "test").glob("*.txt")) + sorted((CORPORA / "sample").glob("*.txt"))
             + sorted((CORPORA / "dev").glob("*.txt"))[:150])
    return [(f"{p.parent.name}/{p.stem}", p.read_text(encoding="utf-8")) for p in paths]


def _rows() -> list[dict]:
    """Notes with patients, dates and claims chosen so the cross-encounter rules have work to do."""
    rng = random.Random(7)
    rows = []
    for i, (note_id, text) in enumerate(_notes()):
        patient = f"P{i // 6:03d}"   # six encounters per patient
        month = 1 + (i % 6) * 2 if i % 4 else 1 + (i % 6)          # some within months of each other
        day = "2024-%02d-%02d" % (month, 1 + rng.randrange(28))
        rows.append({"note_id": note_id, "note_text": text, "patient_id": patient, "service_date": day,
                     "billed_code": rng.choice(["62323", "62321", "62322", "", "62323-50"])})
    # The frequency window's edge (months_before clips 2025-03-31 to 2024-03-31 - 12 months = exact day),
    # and two notes on one day for one patient.
    edge = [r for r in rows if r["patient_id"] == "P001"]
    for r, day in zip(edge, ["2024-03-31", "2024-06-30", "2024-09-30", "2024-12-31", "2025-02-28", "2025-03-31"]):
        r["service_date"] = day
    same_day = [r for r in rows if r["patient_id"] == "P002"]
    for r in same_day:
        r["service_date"] = "2024-05-05"
    rows += [
        {"note_id": "bad-empty", "note_text": "   \n ", "patient_id": "P900", "service_date": "2024-01-01"},
        {"note_id": "bad-binary", "note_text": "\x00\x01\x02 PK zip", "patient_id": "P900"},
        {"note_id": "bad-no-text", "patient_id": "P900"},
        {"note_id": "bad-number", "note_text": 12345},
        {"note_text": rows[0]["note_text"], "patient_id": "P901", "service_date": "03/04/2024"},
        {"note_id": rows[1]["note_id"], "note_text": rows[1]["note_text"], "service_date": "not a date"},
        {"note_id": rows[1]["note_id"], "note_text": rows[2]["note_text"]},
        {"note_id": "bad-huge", "note_text": "epidural " * 130_000},
        {"note_id": "not-epidural", "note_text": "Clinic visit. Knee pain, ibuprofen. Follow up in 6 weeks."},
    ]
    return rows


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("spark-export") / "notes.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for row in _rows():
            fh.write(json.dumps(row) + "\n")
        fh.write('{"note_id": "bad-json", "note_text": "unterminated\n')
    return path


@pytest.fixture(scope="module")
def spark():
    session = get_session("local[2]")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def local_audit(export, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local-audit")
    run_audit(export, out, options=SourceOptions(), jobs=2, quiet=True)
    return out


@pytest.fixture(scope="module")
def spark_audit(export, spark, tmp_path_factory):
    out = tmp_path_factory.mktemp("spark-audit")
    run = audit_path(str(export), out, options=SourceOptions(), spark=spark)
    return out, run


def _spark_results(out: Path) -> dict[str, dict]:
    table = pyarrow_dataset.dataset(out / "results", format="parquet", partitioning="hive").to_table()
    return {row["note_id"]: row for row in table.to_pylist()}


def _local_results(out: Path) -> dict[str, dict]:
    lines = [json.loads(line) for line in (out / "results.jsonl").read_text(encoding="utf-8").splitlines()]
    return {line["note_id"]: line for line in lines}


def test_results_equal_the_local_audit_note_for_note(local_audit, spark_audit):
    out, _ = spark_audit
    local, spark_rows = _local_results(local_audit), _spark_results(out)
    assert len(local) == len(_rows()) + 1   # every row, the malformed line included
    assert sorted(spark_rows) == sorted(local)
    different = [note_id for note_id, line in local.items() if json.loads(spark_rows[note_id]["result_json"]) != line]
    assert different == []


def test_the_parity_export_exercises_every_cross_encounter_rule(local_audit):
    seen = {(f["id"], f["status"]) for line in _local_results(local_audit).values()
            for f in line["audit"]["history_findings"]}
    for rule in ("frequency_limit", "repeat_without_response", "multiple_regions_same_day"):
        assert (rule, "missing") in seen and (rule, "met") in seen, rule


def test_flat_columns_agree_with_the_results_line(spark_audit):
    out, _ = spark_audit
    for note_id, row in _spark_results(out).items():
        line = json.loads(row["result_json"])
        assert row["status"] == line["status"] and row["error"] == line.get("error")
        assert row["suggested_code"] == (line.get("code") or {}).get("cpt")
        assert row["complete"] == line["audit"]["complete"]
        assert row["code_group"] == (row["suggested_code"] or row["out_of_family"]
                                     or ("error" if row["status"] == "error" else "no_code"))
        ids = [f["id"] for f in row["findings"]]
        assert ids == [f["id"] for f in line["findings"] + line["audit"]["history_findings"]], note_id


def test_findings_equal_findings_csv(local_audit, spark_audit):
    out, _ = spark_audit
    with (local_audit / "findings.csv").open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        assert tuple(next(reader)) == FINDINGS_COLUMNS
        local = sorted(tuple(r) for r in reader)
    table = pyarrow_dataset.dataset(out / "findings", format="parquet").to_table().to_pylist()

    def cell(value):   # findings.csv neutralises spreadsheet formulas; Parquet keeps the value
        text = "" if value is None else str(value)
        return "'" + text if text.startswith(("=", "+", "-", "@", "\t", "\r")) else text

    spark_rows = sorted(tuple(cell(r[c]) for c in FINDINGS_COLUMNS) for r in table)
    assert spark_rows == local


def test_summary_equals_the_local_summary(local_audit, spark_audit):
    out, run = spark_audit
    local = json.loads((local_audit / "summary.json").read_text(encoding="utf-8"))
    spark_summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert spark_summary == run.summary
    assert {k: v for k, v in spark_summary.items() if k not in SHARED_SUMMARY_KEYS_EXCLUDED} == \
        {k: v for k, v in local.items() if k not in SHARED_SUMMARY_KEYS_EXCLUDED}
    assert spark_summary["engine"]["name"] == "spark" and spark_summary["notes_error"] >= 6


def test_rows_that_are_not_notes_become_error_rows(spark_audit):
    out, run = spark_audit
    rows = _spark_results(out)
    assert run.summary["notes_read"] == len(rows) == len(_rows()) + 1
    errors = {note_id: row["error"] for note_id, row in rows.items() if row["status"] == "error"}
    assert "empty note" in errors["bad-empty"]
    assert "binary data" in errors["bad-binary"]
    assert "no note text" in errors["bad-no-text"]
    assert "too large" in errors["bad-huge"]
    assert any("malformed JSON line" in message for message in errors.values())
    renamed = [r for note_id, r in rows.items() if note_id.endswith(("#2", "#3"))]
    assert len(renamed) == 2 and all("appears more than once" in " ".join(r["warnings"]) for r in renamed)
    assert "not an epidural injection note" in errors["not-epidural"]
    assert "not a string" in errors["bad-number"]
    # Error messages name notes, never quote them.
    assert not any("PK zip" in message or "unterminated" in message for message in errors.values())


def test_audit_dataframe_from_a_notebook(spark):
    notes = _notes()[:30]
    df = spark.createDataFrame([(f"n{i}", text, "PX", f"2024-0{1 + i % 9}-01") for i, (_, text) in enumerate(notes)],
                               "note_id string, note_text string, mrn string, dos string")
    results = audit_dataframe(df, text_col="note_text", id_col="note_id")
    got = {r["note_id"]: r for r in results.collect()}
    assert sorted(got) == sorted(f"n{i}" for i in range(30))
    assert all(r["patient_id"] == "PX" and r["service_date"] for r in got.values())   # mrn, dos auto-detected
    findings = explode_findings(results)
    assert findings.count() == sum(len(r["findings"]) for r in got.values())
    summary = summarize(results)
    assert summary["notes_written"] == 30
    assert summary["notes_complete"] == sum(r["complete"] for r in got.values())
    # Thirty sessions of one patient in nine months: over the frequency limit.
    assert summary["by_history_finding"].get("frequency_limit", 0) > 0
    spark.catalog.clearCache()


def test_csv_export_equals_the_local_audit(spark, tmp_path):
    rows = [r for r in _rows()[:40] if isinstance(r.get("note_text"), str)]
    rows += [{"note_id": "csv-empty", "note_text": "", "patient_id": ""}, {"note_id": "", "note_text": rows[3]["note_text"]}]
    path = tmp_path / "notes.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, ["note_id", "note_text", "patient_id", "service_date", "billed_code"])
        writer.writeheader()
        writer.writerows(rows)   # note texts keep their newlines, quoted
    run_audit(path, tmp_path / "local", options=SourceOptions(), jobs=1, quiet=True)
    audit_path(str(path), tmp_path / "spark", options=SourceOptions(), spark=spark, partition_by="none")
    local, spark_rows = _local_results(tmp_path / "local"), _spark_results(tmp_path / "spark")
    assert len(local) == len(rows)
    assert {k: json.loads(v["result_json"]) for k, v in spark_rows.items()} == local
    assert "empty note" in local["csv-empty"]["error"] and f"row-{len(rows) + 1}" in local


def _cli(*args: str, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "notecheck", "audit", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout, cwd=REPO)


def test_cli_audits_parquet_into_partitioned_results(export, tmp_path):
    pandas = pytest.importorskip("pandas")
    rows = [r for r in _rows()[:24] if isinstance(r.get("note_text"), str)]
    path = tmp_path / "notes.parquet"
    pandas.DataFrame(rows).to_parquet(path)
    out = tmp_path / "out"
    proc = _cli(str(path), "--engine", "spark", "--master", "local[2]", "--out", str(out))
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    assert f"read {len(rows)} notes" in proc.stderr and "Parquet notes.parquet" in proc.stderr
    parts = {p.name for p in (out / "results").iterdir() if p.is_dir()}
    assert parts and all(p.startswith("code_group=") for p in parts)
    assert (out / "findings").is_dir()
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["notes_written"] == len(rows) and summary["source"]["format"] == "parquet"
    # PHI: nothing of a note's text reaches stderr.
    assert "epidural" not in proc.stderr.lower() and "interlaminar" not in proc.stderr.lower()


def test_cli_says_when_java_is_missing(export, tmp_path):
    proc = _cli(str(export), "--engine", "spark", "--out", str(tmp_path / "out"),
                env={"JAVA_HOME": str(tmp_path / "no-java"), "PATH": str(tmp_path)})
    assert proc.returncode == 2
    assert "needs a Java 17+ runtime" in proc.stderr and "Traceback" not in proc.stderr


def test_cli_says_when_the_workers_cannot_import_notecheck(export, tmp_path):
    bare = tmp_path / "bare-venv"
    venv.create(bare, with_pip=False)
    proc = _cli(str(export), "--engine", "spark", "--master", "local[1]", "--out", str(tmp_path / "out"),
                env={"PYSPARK_PYTHON": str(bare / "bin" / "python")})
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "PYSPARK_PYTHON" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("flag", [["--resume"], ["--jobs", "2"], ["--db", "h.sqlite"]])
def test_cli_refuses_local_only_options(flag, export, tmp_path, capsys):
    from notecheck.cli import main

    assert main(["audit", str(export), "--engine", "spark", "--out", str(tmp_path), *flag]) == 2
    assert "cannot be used with --engine spark" in capsys.readouterr().err


def test_results_lines_cut_and_put_back_are_the_same_bytes(local_audit, spark):
    """The check step cuts each results line around the parts the history step fills in; joined again
    (in Python, and by the SQL the results use) they must be the local audit's line byte for byte,
    with a warning appended where the history step could not run."""
    from notecheck.audit.outputs import dump_line
    from notecheck.distributed.spark_lines import PIECES, join_pieces, result_json_column, split_line
    import orjson
    from pyspark.sql import functions as F

    lines = list(_local_results(local_audit).values())
    with_warnings = [line for line in lines if line["warnings"]][:3]
    without = [line for line in lines if not line["warnings"] and line["audit"]["history_findings"]][:3]
    assert with_warnings and without
    rows = []
    for line in with_warnings + without:
        history, complete = line["audit"]["history_findings"], line["audit"]["complete"]
        blank = {**line, "audit": {**line["audit"], "history_findings": [], "complete": False}}
        pieces = split_line(blank)
        assert pieces["spliced"]
        history_json = orjson.dumps(history).decode()
        assert join_pieces(pieces, history_json, complete) == dump_line(line).rstrip("\n")
        warned = {**line, "warnings": [*line["warnings"], "cross-encounter findings not computed (X)"]}
        warning_json = orjson.dumps("cross-encounter findings not computed (X)").decode()
        assert join_pieces(pieces, history_json, complete, warning_json) == dump_line(warned).rstrip("\n")
        rows.append({**{name: pieces[name] for name in PIECES}, "spliced": True, "history_json": history_json,
                     "complete": complete, "warning_json": warning_json,
                     "expected": dump_line(warned).rstrip("\n")})
    df = spark.createDataFrame(rows)
    got = df.select(result_json_column(F.col("history_json"), F.col("complete"), F.col("warning_json")).alias("r"),
                    "expected").collect()
    assert all(row["r"] == row["expected"] for row in got)


def test_outputs_to_a_uri_go_through_the_cluster_file_system(spark, tmp_path):
    rows = [r for r in _rows()[:12] if isinstance(r.get("note_text"), str)]
    path = tmp_path / "notes.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    run = audit_path(str(path), f"file://{tmp_path}/out", spark=spark, partition_by="date")
    summary = json.loads((tmp_path / "out" / "summary.json").read_text(encoding="utf-8"))
    assert summary == run.summary and summary["notes_written"] == len(rows)
    assert [p.name.split("=")[0] for p in (tmp_path / "out" / "results").iterdir() if p.is_dir()] == ["run_date"]
