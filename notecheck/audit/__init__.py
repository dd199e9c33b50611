"""Batch audit of note exports: `notecheck audit` (sources, runner, outputs, billing, history, report).

`run_audit(source, out_dir, options=SourceOptions(...))` reads a folder of .txt notes, a CSV or JSONL
dump or a FHIR export, checks every note (in parallel, resumably) and writes results.jsonl,
findings.csv, summary.json and report.html into out_dir, with a SQLite history across encounters.
"""

from .runner import AuditSetupError, AuditSummary, run_audit
from .sources import SourceError, SourceOptions

__all__ = ["AuditSetupError", "AuditSummary", "SourceError", "SourceOptions", "run_audit"]
