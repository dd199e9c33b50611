"""`notecheck audit SOURCE --engine spark`: the command-line front of notecheck.distributed.spark.

Same exit status as the local audit: 0 every note complete, 1 some incomplete or in error, 2 a usage
error, an unreadable source, or Spark that cannot run (no pyspark, no Java, workers without notecheck).
stderr gets counts, note ids and the engine's own messages, never note text.
"""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

EXIT_USAGE = 2
MAX_ERRORS_SHOWN = 10
LOCAL_ONLY = (("jobs", "--jobs (use --master local[N])"), ("resume", "--resume"), ("db", "--db"))


def run_spark_audit(args: argparse.Namespace, err: TextIO) -> int:
    from ..audit import SourceError, SourceOptions
    from ..profiles import ProfileError
    from .spark_session import SparkSetupError

    unsupported = [label for name, label in LOCAL_ONLY if getattr(args, name, None)]
    if unsupported:
        print(f"notecheck: error: {', '.join(unsupported)} cannot be used with --engine spark", file=err)
        return EXIT_USAGE
    try:
        conf = _parse_conf(args.spark_conf)
    except ValueError as exc:
        print(f"notecheck: error: {exc}", file=err)
        return EXIT_USAGE
    if not args.quiet and err.isatty():
        conf.setdefault("spark.ui.showConsoleProgress", "true")   # Spark's own stage bar, on stderr
    options = SourceOptions(text_col=args.text_col, id_col=args.id_col, patient_col=args.patient_col,
                            date_col=args.date_col, billed_col=args.billed_col, max_bytes=args.max_bytes)
    try:
        from .spark import audit_path

        run = audit_path(args.source, args.out, options=options, master=args.master, conf=conf,
                         profile=args.profile, partition_by=args.partition_by, partitions=args.partitions,
                         input_format=args.input_format, log=None if args.quiet else err)
    except (SourceError, SparkSetupError, ProfileError) as exc:
        print(f"notecheck: error: {exc}", file=err)
        return EXIT_USAGE
    except OSError as exc:
        print(f"notecheck: error: {getattr(exc, 'filename', None) or args.out}: {exc.strerror or type(exc).__name__}",
              file=err)
        return EXIT_USAGE
    except Exception as exc:  # noqa: BLE001 - a Spark job failure: its text may quote data, so the type only
        print(f"notecheck: error: the Spark audit failed ({type(exc).__name__}); see the Spark driver and "
              "executor logs", file=err)
        return 1
    s = run.summary
    if not args.quiet:
        for message in s["errors_sample"][:MAX_ERRORS_SHOWN]:
            print(f"notecheck: error: {message}", file=err)
    if s["notes_read"] == 0:
        print(f"notecheck: error: no notes found in {args.source}", file=err)
        return EXIT_USAGE
    _print_totals(run, err)
    return run.exit_status


def _parse_conf(items: list[str]) -> dict[str, str]:
    conf = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--spark-conf {item!r}: expected KEY=VALUE")
        conf[key.strip()] = value.strip()
    return conf


def _print_totals(run, err: TextIO = sys.stderr) -> None:
    s = run.summary
    billed = s["billed"]
    rate = s.get("completeness_rate")
    print(f"read {s['notes_read']} notes: ok {s['notes_ok']}, error {s['notes_error']}; written {s['notes_written']} "
          f"(read == written: {'yes' if s['read_equals_written'] else 'no'})", file=err)
    print(f"complete {s['notes_complete']}, incomplete {s['notes_incomplete']}"
          + (f" (completeness {rate:.1%})" if rate is not None else "")
          + (f"; billed codes: {billed['supported']} supported, {billed['mismatch']} mismatched"
             if billed["notes_with_billed"] else ""), file=err)
    print(f"Spark {run.engine['spark_version']} on {run.engine['master']}: {s['notes_read']} notes in "
          f"{run.seconds:.1f} s ({s['notes_read'] / run.seconds:.1f} notes/s)", file=err)
    print(f"outputs in {run.out_dir}: results/ and findings/ (Parquet), summary.json", file=err)
