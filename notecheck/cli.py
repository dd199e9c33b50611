"""`notecheck` command line: check notes, audit exports, evaluate, serve the EHR hook, print the schema.

Exit status of `check`: 0 every note complete; 1 at least one note incomplete (a payer-required
element missing, no supportable 6232x code, or a checking error); 2 usage error or an input that could
not be read (missing, empty, binary, too large). 2 wins over 1 because an unreadable input means the
run did not check what the caller asked for.

stderr carries only messages built here from note ids, file-level facts and exception type names:
never note text (notes are PHI), never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import Protocol, TextIO

from . import __version__
from .reading import MAX_NOTE_BYTES, NoteInput, read_inputs
from .record import NoteResult
from .render import render_text

EXIT_COMPLETE = 0
EXIT_INCOMPLETE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class Checker(Protocol):
    def check(self, text: str, note_id: str = "note", billed: str | None = None) -> NoteResult: ...


CheckerFactory = Callable[[], Checker]


def _default_checker_factory(profile: str | None = None) -> Checker:
    # Imported here so `schema`, `--version` and runs where every input is unreadable never pay
    # for loading spaCy and the rules.
    from .engine import NoteChecker

    return NoteChecker(profile=profile)


def main(argv: list[str] | None = None, checker_factory: CheckerFactory | None = None) -> int:
    """Run the CLI and return the exit status. Tests pass `checker_factory` to inject a fake engine."""
    _tolerate_unencodable_output(sys.stdout)
    _tolerate_unencodable_output(sys.stderr)
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits for --help/--version (0) and usage errors (2)
        return exc.code if isinstance(exc.code, int) else (EXIT_USAGE if exc.code else 0)

    try:
        if args.command == "schema":
            print(json.dumps(NoteResult.model_json_schema(), indent=2))
            return EXIT_COMPLETE
        if args.command == "rules":
            from .explain import run_rules

            return run_rules(args, sys.stdout, sys.stderr)
        if args.command == "audit":
            return _run_audit(args, sys.stderr)
        if args.command == "serve":
            from .service.cli import run_serve

            return run_serve(args, sys.stderr)
        factory = checker_factory or (lambda: _default_checker_factory(args.profile))
        if args.command == "eval":
            return _run_eval(args, factory, sys.stdout, sys.stderr)
        return _run_check(args, factory, sys.stdout, sys.stderr)
    except BrokenPipeError:
        # The reader went away (`notecheck check ... | head`): stop quietly, not with a traceback.
        _silence_stdout()
        return EXIT_INCOMPLETE
    except KeyboardInterrupt:
        print("notecheck: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="notecheck",
        description="Check epidural injection procedure notes (CPT 62320-62327) for coding and "
        "documentation completeness.",
    )
    parser.add_argument("--version", action="version", version=f"notecheck {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = sub.add_parser("check", help="check one or more notes", description="Check notes.")
    check.add_argument("paths", nargs="+", metavar="PATH", help='note file, or "-" for stdin')
    check.add_argument(
        "--format", choices=("text", "jsonl", "json"), default="text",
        help="text: human-readable report; jsonl: one JSON object per note as it is done; "
        "json: one JSON array at the end (default: text)",
    )
    check.add_argument(
        "--max-bytes", type=_positive_int, default=MAX_NOTE_BYTES, metavar="N",
        help=f"reject notes larger than N bytes (default: {MAX_NOTE_BYTES})",
    )
    check.add_argument("--billed", default=None, metavar="CLAIM",
                       help='the billed codes and modifiers to compare with the documentation, e.g. "62323" or '
                       '"99213-25, 62323-50" (applies to every note of the run)')
    _add_profile(check)

    sub.add_parser("schema", help="print the JSON Schema of a note result",
                   description="Print the JSON Schema of NoteResult.")

    ev = sub.add_parser("eval", help="measure accuracy on an annotated corpus",
                        description="Check every note of CORPUS_DIR against its labels.jsonl (corpora/README.md) "
                        "and report code, field, medication and requirement accuracy. Exit 1 when a --min-* "
                        "threshold is not met.")
    ev.add_argument("corpus", metavar="CORPUS_DIR")
    ev.add_argument("--format", choices=("text", "json"), default="text")
    ev.add_argument("--min-code-accuracy", type=float, default=0.0, metavar="X")
    ev.add_argument("--min-field-accuracy", type=float, default=0.0, metavar="X")
    ev.add_argument("--min-requirement-f1", type=float, default=0.0, metavar="X")
    ev.add_argument("--min-icd10-precision", type=float, default=0.0, metavar="X")
    ev.add_argument("--min-icd10-recall", type=float, default=0.0, metavar="X")
    ev.add_argument("--min-coverage-f1", type=float, default=0.0, metavar="X",
                    help="every coverage / coding rule with gold support must reach this F1")
    _add_profile(ev)
    _add_audit_parser(sub)
    from .service.cli import add_serve_parser

    add_serve_parser(sub, _positive_int, _add_profile)
    rules = sub.add_parser("rules", help="list the rules (or show one) with sources and payer values",
                           description="List every rule id with title, severity, source and payer-profile "
                           "values; with ID, show that rule's rationale, messages and example notes.")
    rules.add_argument("rule_id", nargs="?", metavar="ID")
    rules.add_argument("--format", choices=("text", "json"), default="text")
    _add_profile(rules)
    return parser


def _add_profile(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default=None, metavar="ID|FILE",
                        help="payer profile: an id from patterns/profiles (medicare, commercial-6wk) or a YAML "
                        "file that may extend one (default: medicare)")


def _add_audit_parser(sub) -> None:
    au = sub.add_parser(
        "audit", help="audit a note export (folder, CSV, JSONL, FHIR) into an output folder",
        description="Check every note of an export and write results.jsonl, findings.csv, summary.json and "
        "report.html into --out, with a history of encounters across audits (SQLite). Exit 0 every note "
        "complete; 1 some notes incomplete or in error; 2 usage error or an unreadable source.")
    au.add_argument("source", metavar="SOURCE",
                    help="folder of .txt notes (recursive), CSV/TSV, JSONL, FHIR NDJSON of DocumentReference, "
                    "or a FHIR Bundle JSON; with --engine spark: Parquet, CSV/TSV or JSONL, a path or a URI")
    au.add_argument("--out", required=True, metavar="DIR", help="output folder (created if needed)")
    for name, what in (("text", "note text"), ("id", "note id"), ("patient", "patient id"),
                       ("date", "date of service"), ("billed", "billed CPT code(s) and modifiers")):
        au.add_argument(f"--{name}-col", metavar="NAME", default=None,
                        help=f"column or field holding the {what} (default: auto-detected)")
    au.add_argument("--jobs", type=_positive_int, default=None, metavar="N",
                    help="worker processes (default: number of cores)")
    au.add_argument("--resume", action="store_true",
                    help="continue an interrupted audit in --out, skipping notes already done")
    au.add_argument("--db", metavar="PATH", default=None,
                    help="history database shared across audits (default: DIR/history.sqlite)")
    au.add_argument("--quiet", action="store_true", help="no progress bar and no per-note error lines")
    au.add_argument("--max-bytes", type=_positive_int, default=MAX_NOTE_BYTES, metavar="N",
                    help=f"reject notes larger than N bytes (default: {MAX_NOTE_BYTES})")
    _add_profile(au)
    spark = au.add_argument_group("Apache Spark (--engine spark; pip install 'notecheck[spark]')")
    spark.add_argument("--engine", choices=("local", "spark"), default="local",
                       help="local: worker processes on this machine (default); spark: a Spark job that writes "
                       "results/ and findings/ as Parquet and summary.json into --out")
    spark.add_argument("--master", default=None, metavar="URL",
                       help="Spark master: local[N], spark://host:7077, yarn... (default: the active session, else local[*])")
    spark.add_argument("--spark-conf", action="append", default=[], metavar="KEY=VALUE",
                       help="a Spark setting, e.g. spark.executor.memory=4g (repeatable)")
    spark.add_argument("--input-format", choices=("parquet", "csv", "jsonl"), default=None,
                       help="how Spark reads SOURCE (default: from its extension)")
    spark.add_argument("--partition-by", choices=("code", "date", "none"), default="code",
                       help="results/ partitioned by suggested code (default), by run date, or not at all")
    spark.add_argument("--partitions", type=_positive_int, default=None, metavar="N",
                       help="spread the notes over at least N partitions (default: 3 per core)")


def _run_audit(args: argparse.Namespace, err: TextIO) -> int:
    from pathlib import Path

    if args.engine == "spark":
        from .distributed.spark_cli import run_spark_audit

        return run_spark_audit(args, err)

    from .audit import AuditSetupError, SourceError, SourceOptions, run_audit

    options = SourceOptions(text_col=args.text_col, id_col=args.id_col, patient_col=args.patient_col,
                            date_col=args.date_col, billed_col=args.billed_col, max_bytes=args.max_bytes)
    try:
        result = run_audit(Path(args.source), Path(args.out), options=options, jobs=args.jobs,
                           resume=args.resume, db_path=Path(args.db) if args.db else None, quiet=args.quiet,
                           profile=args.profile)
    except (SourceError, AuditSetupError) as exc:
        print(f"notecheck: error: {exc}", file=err)
        return EXIT_USAGE
    except RuntimeError as exc:   # workers that cannot run at all; what was done is saved for --resume
        print(f"notecheck: error: {exc}", file=err)
        return EXIT_INCOMPLETE
    except OSError as exc:
        # The output folder or the history file: a path the user chose, so its name is safe to show.
        print(f"notecheck: error: {getattr(exc, 'filename', None) or args.out}: {exc.strerror or type(exc).__name__}",
              file=err)
        return EXIT_USAGE
    except Exception as exc:  # noqa: BLE001 - a bug: its message could quote a note, so the type only
        print(f"notecheck: error: audit failed ({type(exc).__name__}); results so far are in {args.out}, "
              "--resume continues them", file=err)
        return EXIT_INCOMPLETE
    if result.notes_read == 0:
        print(f"notecheck: error: no notes found in {args.source}", file=err)
        return EXIT_USAGE
    return result.exit_status


def _positive_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {value!r}") from None
    if n <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {n}")
    return n


def _run_check(args: argparse.Namespace, factory: CheckerFactory, out: TextIO, err: TextIO) -> int:
    session = _CheckSession(factory, err)
    reading_failed = incomplete = False
    collected: list[dict] = []  # only for --format json, which must wait for the last note
    first = True

    for note in read_inputs(args.paths, max_bytes=args.max_bytes):
        for warning in note.warnings:
            print(f"notecheck: warning: note {note.note_id}: {warning}", file=err)
        if note.error is not None:
            reading_failed = True
            print(f"notecheck: error: {note.error}", file=err)
            result = NoteResult(note_id=note.note_id, status="error", error=note.error,
                                warnings=list(note.warnings))
        else:
            result = session.check(note, args.billed)
        incomplete = incomplete or not result.complete

        if args.format == "jsonl":
            print(result.model_dump_json(), file=out, flush=True)
        elif args.format == "json":
            collected.append(result.model_dump(mode="json"))
        else:
            if not first:
                print(file=out)
            print(render_text(result, note.text), file=out, flush=True)
        first = False

    if args.format == "json":
        print(json.dumps(collected, indent=2, ensure_ascii=False), file=out, flush=True)

    if reading_failed:
        return EXIT_USAGE
    return EXIT_INCOMPLETE if incomplete else EXIT_COMPLETE


class _CheckSession:
    """Builds the checker once, on the first readable note, and turns engine failures into results."""

    def __init__(self, factory: CheckerFactory, err: TextIO) -> None:
        self._factory = factory
        self._err = err
        self._checker: Checker | None = None
        self._startup_failure: str | None = None

    def check(self, note: NoteInput, billed: str | None = None) -> NoteResult:
        assert note.text is not None
        checker = self._get_checker()
        if checker is None:
            return self._error(note, f"checker could not start ({self._startup_failure}); "
                                     f"note {note.note_id} not checked")
        try:
            result = (checker.check(note.text, note.note_id, billed) if billed
                      else checker.check(note.text, note.note_id))
            if not isinstance(result, NoteResult):
                raise TypeError(f"engine returned {type(result).__name__}, not NoteResult")
        except Exception as exc:  # one note's failure must not stop the others
            # Type name only: an exception message could quote the note.
            message = f"internal error while checking note {note.note_id}: {type(exc).__name__}"
            print(f"notecheck: error: {message}", file=self._err)
            return self._error(note, message)
        if not note.warnings:
            return result
        # Copy, so a checker that hands back shared/cached results is not mutated.
        return result.model_copy(update={"warnings": [*note.warnings, *result.warnings]})

    def _get_checker(self) -> Checker | None:
        if self._checker is None and self._startup_failure is None:
            try:
                self._checker = self._factory()
            except Exception as exc:
                # No note has been seen by the factory, so its message is safe and usually the fix
                # (e.g. a missing spaCy model); reported once, not once per note.
                self._startup_failure = type(exc).__name__
                print(f"notecheck: error: could not start the checker: {type(exc).__name__}: "
                      f"{_one_line(str(exc))}", file=self._err)
        return self._checker

    @staticmethod
    def _error(note: NoteInput, message: str) -> NoteResult:
        return NoteResult(note_id=note.note_id, status="error", error=message,
                          warnings=list(note.warnings))


def _one_line(text: str, limit: int = 300) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _tolerate_unencodable_output(stream: TextIO) -> None:
    # Notes can contain characters (or U+FFFD from a bad decode) that a legacy-encoded terminal
    # cannot show; escaping them beats crashing mid-report.
    reconfigure = getattr(stream, "reconfigure", None)
    if reconfigure is not None:
        try:
            reconfigure(errors="backslashreplace")
        except (ValueError, OSError):
            pass


def _silence_stdout() -> None:
    # Point stdout at devnull so the interpreter's final flush does not raise BrokenPipeError again.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def _run_eval(args: argparse.Namespace, factory: CheckerFactory, out: TextIO, err: TextIO) -> int:
    from pathlib import Path

    from .evaluation import LabelError, evaluate_pairs, load_labels, render_report, thresholds_failed
    from .reading import read_path

    corpus = Path(args.corpus)
    labels_file = corpus / "labels.jsonl"
    if not labels_file.is_file():
        print(f"notecheck: error: {labels_file} not found (see corpora/README.md)", file=err)
        return EXIT_USAGE
    try:
        labels = load_labels(labels_file)
    except LabelError as exc:
        print(f"notecheck: error: {exc}", file=err)
        return EXIT_USAGE
    checker = factory()

    def pairs():
        for label in labels:
            note = read_path(str(corpus / f"{label['note_id']}.txt"), MAX_NOTE_BYTES)
            if note.text is None:
                yield label, NoteResult(note_id=label["note_id"], status="error", error=note.error)
            else:
                billed = label.get("billed")
                yield label, (checker.check(note.text, label["note_id"], billed) if billed
                              else checker.check(note.text, label["note_id"]))

    evaluation = evaluate_pairs(pairs())
    if args.format == "json":
        print(json.dumps(evaluation.as_dict(), indent=2), file=out)
    else:
        print(render_report(evaluation), file=out)
    failures = thresholds_failed(evaluation, args.min_code_accuracy, args.min_field_accuracy,
                                 args.min_requirement_f1, args.min_icd10_precision, args.min_icd10_recall,
                                 args.min_coverage_f1)
    for failure in failures:
        print(f"notecheck: below threshold: {failure}", file=err)
    return EXIT_INCOMPLETE if failures else EXIT_COMPLETE
