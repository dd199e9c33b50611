"""The pipeline as built: tokens, sentence boundaries, rule loading, no noise on stderr, no PHI in logs."""

import subprocess
import sys
from pathlib import Path

import spacy
from medspacy.custom_tokenizer import create_medspacy_tokenizer

from notecheck.pipeline import COMPONENTS, build_pipeline

SAMPLES = sorted(Path(__file__).resolve().parent.parent.glob("corpora/sample/*.txt"))


def test_tokens_match_medspacys_tokenizer(checker):
    reference = spacy.blank("en")
    reference.tokenizer = create_medspacy_tokenizer(reference)
    texts = [p.read_text() for p in SAMPLES] + ["a  b\n\nc \n d\t\te   \n", "x\r\n\r\ny", "L4-L5 80mg c/o 1.5 mL"]
    for text in texts:
        ours = [(t.text, t.idx) for t in checker.nlp.tokenizer(text)]
        theirs = [(t.text, t.idx) for t in reference.tokenizer(text)]
        assert ours == theirs


def test_pipeline_has_the_documented_components(checker):
    assert checker.nlp.pipe_names == COMPONENTS


def test_sentences_break_at_lines_and_run_together_headers(checker):
    doc = checker.nlp("Denies fever\nContrast: Omnipaque 2 mL. Next one; PROCEDURE: , Lumbar,ANESTHESIA: , Local.")
    starts = [s.text.split()[0] for s in doc.sents if s.text.strip()]
    assert starts[:2] == ["Denies", "Contrast:"]
    assert "ANESTHESIA:" in starts


def test_rules_come_from_the_patterns_folder(tmp_path):
    """Editing a rule file changes what the pipeline finds (rules are data)."""
    import json
    import shutil

    src = Path(__file__).resolve().parent.parent / "patterns"
    shutil.copytree(src, tmp_path / "patterns")
    drugs = tmp_path / "patterns" / "targets" / "drugs.json"
    data = json.loads(drugs.read_text())
    data["target_rules"].append({"literal": "zorbazine", "category": "DRUG",
                                 "metadata": {"id": "DRUG-TEST-01", "name": "zorbazine", "drug_class": "steroid"}})
    drugs.write_text(json.dumps(data))
    nlp = build_pipeline(str(tmp_path / "patterns"))
    doc = nlp("Zorbazine 40 mg was injected.")
    labels = {s.label_ for s in doc.spans["notecheck"]}
    assert "DRUG" in labels


def test_no_dependency_output_and_no_note_text_on_stderr(tmp_path):
    """PyRuSH/medspaCy log note words at DEBUG through loguru; nothing of the note may reach stderr."""
    note = tmp_path / "phi.txt"
    note.write_text("Patient Zebulonia Quartermaine had an L4-L5 interlaminar epidural steroid injection under "
                    "fluoroscopy. Informed consent obtained. Depo-Medrol 80 mg.")
    proc = subprocess.run([sys.executable, "-m", "notecheck", "check", "--format", "jsonl", str(note)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode in (0, 1)
    assert proc.stderr == ""
    assert "Zebulonia" not in proc.stderr


def test_a_long_note_is_checked_in_linear_time(checker):
    """~400 KB, 9,000 sentences: a quadratic step anywhere (overlap checks, per-mention scans) would take
    minutes here; linear code takes about a second."""
    import time

    text = "L4-L5 interlaminar epidural steroid injection under fluoroscopy, Depo-Medrol 80 mg. " * 4500
    started = time.perf_counter()
    result = checker.check(text, "long")
    assert result.status == "ok" and result.code.cpt == "62323"
    assert time.perf_counter() - started < 30


def test_one_failing_note_does_not_stop_a_batch(checker, monkeypatch, caplog):
    """A bug on one note (forced here) gives that note an error and the others their results."""
    import notecheck.engine as engine

    real_extract = engine.extract

    def failing_extract(doc, folder):
        if "Quixotrine" in doc.text:
            raise RuntimeError("Quixotrine broke it")
        return real_extract(doc, folder)

    monkeypatch.setattr(engine, "extract", failing_extract)
    notes = [("a", "L4-L5 interlaminar epidural steroid injection."), ("b", "Quixotrine L5-S1 epidural."),
             ("c", "C7-T1 interlaminar epidural steroid injection under fluoroscopy.")]
    results = list(checker.check_many(notes))
    assert [r.note_id for r in results] == ["a", "b", "c"]
    assert [r.status for r in results] == ["ok", "error", "ok"]
    assert "RuntimeError" in results[1].error and "Quixotrine" not in results[1].error
    assert "Quixotrine" not in caplog.text
