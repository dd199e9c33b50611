"""Corpus-scale audits on Apache Spark: `audit_dataframe` for notebooks, `audit_path` for
`notecheck audit --engine spark`.

    from notecheck.distributed.spark import audit_dataframe, explode_findings, summarize
    results = audit_dataframe(spark_df, text_col="note_text", id_col="note_id")   # one row per note
    findings = explode_findings(results)                                           # one row per finding
    summary = summarize(results)                                                   # summary.json's dict

The work, in Spark terms (notecheck.distributed.spark_tasks has what the Python workers run):
1. the export's rows become note rows (spark_inputs: columns chosen as the local audit chooses them,
   record numbers, repeated ids renamed) and are spread over at least `partitions` partitions;
2. `mapInPandas(check_batches)`: the local audit's per-note work with one checker per Python worker;
   the checked rows are persisted, so the NLP runs once per note whatever is computed from them;
3. cross-encounter context with window functions over the checked rows (spark_history), and
   `mapInPandas(history_batches)` on the counted notes: the local audit's history rules;
4. the findings joined to the checked notes by note id, and each results line put back together in the
   JVM from the pieces the check step cut it into (spark_lines).
A results row's `result_json` is the line `notecheck audit` writes to results.jsonl for that note.
"""

from __future__ import annotations

import datetime as dt
import json
import pickle
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from ..audit import outputs
from ..audit._common import SourceError, SourceOptions
from ..reading import MAX_NOTE_BYTES
from .spark_inputs import NoteFrame, note_frame, read_export
from .spark_session import SparkSetupError, check_workers, get_session

RESULTS_DIR = "results"
FINDINGS_DIR = "findings"
PARTITION_BY = ("code", "date", "none")
# Results lines are repetitive JSON: zstd makes them about a tenth of snappy's size, for the same time.
COMPRESSION = "zstd"
PARTITIONS_PER_CORE = 3
# Cross-encounter findings up to this size are broadcast to the checked notes; above it, joined.
BROADCAST_HISTORY_BYTES = 64 * 1024 * 1024

PUBLIC_COLUMNS = ["note_id", "status", "error", "suggested_code", "out_of_family", "complete", "patient_id",
                  "service_date", "billed", "billing_status", "billing_json", "profile", "warnings", "findings",
                  "record_json", "result_json", "source_row"]
FINDINGS_COLUMNS = ["note_id", "patient_id", "service_date", "requirement_id", "status", "severity", "kind",
                    "message", "source_row"]

__all__ = ["AuditRun", "SparkSetupError", "audit_dataframe", "audit_path", "explode_findings", "release", "summarize"]


def audit_dataframe(df, text_col: str | None = None, id_col: str | None = None, patient_col: str | None = None,
                    date_col: str | None = None, billed_col: str | None = None, *, profile: str | None = None,
                    max_bytes: int = MAX_NOTE_BYTES, partitions: int | None = None):
    """Audit a DataFrame of notes (one row per note); returns a DataFrame of PUBLIC_COLUMNS, one row per
    note, `findings` holding every finding (per note, billing and cross-encounter) as an array of structs.

    Columns not given are auto-detected by name (note_text/text, note_id/id, patient_id/mrn, service_date,
    billed_code...). The notes are checked when this is called; the checked notes and their history
    context stay cached (memory and disk) while the results are in use, until `release(results)`."""
    options = SourceOptions(text_col=text_col, id_col=id_col, patient_col=patient_col, date_col=date_col,
                            billed_col=billed_col, max_bytes=max_bytes)
    check_workers(df.sparkSession, profile)   # a clear error, and checkers built side by side
    notes = note_frame(df, options)
    results, cached = _audit(df.sparkSession, notes, profile, partitions)
    public = results.select(*PUBLIC_COLUMNS)
    public._notecheck_cached = cached   # for release()
    return public


def release(results) -> None:
    """Drop what an audit_dataframe result keeps cached (the checked notes and their history context;
    the session's other cached data stays)."""
    for frame in getattr(results, "_notecheck_cached", []):
        frame.unpersist()


def explode_findings(results):
    """One row per finding of an audit_dataframe result (findings.csv's columns, plus kind and source_row);
    a note in error gives one `note_error` row, as in findings.csv."""
    from pyspark.sql import functions as F

    errors = (results.where(F.col("status") == "error")
              .select("note_id", "patient_id", "service_date", F.lit("note_error").alias("requirement_id"),
                      F.lit("error").alias("status"), F.lit("error").alias("severity"), F.lit("note").alias("kind"),
                      F.col("error").alias("message"), "source_row"))
    found = (results.select("note_id", "patient_id", "service_date", "source_row", F.explode("findings").alias("f"))
             .select("note_id", "patient_id", "service_date", F.col("f.id").alias("requirement_id"),
                     F.col("f.status").alias("status"), F.col("f.severity").alias("severity"),
                     F.col("f.kind").alias("kind"), F.col("f.message").alias("message"), "source_row"))
    return errors.unionByName(found)


def summarize(results, source: dict | None = None, notes_read: int | None = None) -> dict:
    """summary.json's dict (notecheck.audit.outputs) for an audit_dataframe result: partial counts per
    partition, merged here, so only a few small objects reach the driver. `notes_read`: the rows the
    export had (default: the results' count), so that a lost row would show as read != written."""
    from .spark_tasks import SUMMARY_INPUT, summary_batches

    builder = outputs.SummaryBuilder(source or {})
    for row in results.select(*SUMMARY_INPUT).mapInPandas(summary_batches, "state binary").collect():
        builder.merge(pickle.loads(row["state"]))
    summary = builder.to_dict(builder.written if notes_read is None else notes_read)
    summary["notes_resumed"] = 0
    summary["stale_results_dropped"] = 0
    return summary


@dataclass
class AuditRun:
    out_dir: str
    summary: dict
    seconds: float
    engine: dict = field(default_factory=dict)

    @property
    def exit_status(self) -> int:
        s = self.summary
        all_good = s["notes_read"] and s["read_equals_written"] and s["notes_complete"] == s["notes_read"]
        return 0 if all_good else 1


def audit_path(source: str, out_dir: str | Path, *, options: SourceOptions | None = None, master: str | None = None,
               conf: dict[str, str] | None = None, profile: str | None = None, partition_by: str = "code",
               partitions: int | None = None, input_format: str | None = None, spark=None,
               log: TextIO | None = None) -> AuditRun:
    """`notecheck audit SOURCE --engine spark`: read the export, audit it, write results/ and findings/
    (Parquet) and summary.json into out_dir (a local folder, or a URI Spark writes: hdfs://, s3a://, dbfs:/).
    Raises SourceError / SparkSetupError before writing anything
    when the export, the payer profile or Spark cannot be used (ProfileError for the profile). `log`: where
    to say what was started and read (counts and column names only)."""
    from ..profiles import load_profile

    if partition_by not in PARTITION_BY:
        raise ValueError(f"partition_by must be one of {', '.join(PARTITION_BY)}")
    if not _is_uri(source) and not Path(source).exists():
        raise SourceError(f"{source}: no such file or folder")
    load_profile(profile)   # a bad profile is told before a JVM starts
    start = time.perf_counter()
    spark = spark or get_session(master, conf)
    worker = check_workers(spark, profile)
    _say(log, f"Spark {spark.version} on {spark.sparkContext.master}; Python workers: {worker}")
    df, kind = read_export(spark, source, input_format)
    notes = note_frame(df, options or SourceOptions(), kind, source)
    _say(log, notes.describe())
    results, cached = _audit(spark, notes, profile, partitions)
    out = str(out_dir).rstrip("/")
    if not _is_uri(out):
        Path(out).mkdir(parents=True, exist_ok=True)
    try:
        schema = _write_results(results, f"{out}/{RESULTS_DIR}", partition_by)
        # Read back with the written schema: partition values such as 62323 stay strings.
        written = spark.read.schema(schema).parquet(f"{out}/{RESULTS_DIR}")
        (explode_findings(written).write.mode("overwrite").option("compression", COMPRESSION)
         .parquet(f"{out}/{FINDINGS_DIR}"))
        summary = summarize(written, {"path": source, "format": kind, "describe": notes.describe()},
                            notes_read=notes.frame.count())
    finally:
        for frame in cached:
            frame.unpersist()
    engine = {"name": "spark", "spark_version": spark.version, "master": spark.sparkContext.master,
              "python_workers": worker, "partition_by": partition_by}
    summary["engine"] = engine
    if _is_uri(out):
        _write_text(spark, f"{out}/{outputs.SUMMARY}", json.dumps(summary, indent=2))
    else:
        outputs.write_json_atomic(Path(out) / outputs.SUMMARY, summary)
    return AuditRun(out, summary, time.perf_counter() - start, engine)


def _is_uri(path: str) -> bool:
    return "://" in path or path.startswith("dbfs:")


def _write_text(spark, uri: str, text: str) -> None:
    """One file at a URI, through the cluster's Hadoop file system (HDFS, S3A, DBFS...)."""
    jvm = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(uri)
    stream = path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()).create(path, True)
    try:
        stream.write(bytearray(text.encode("utf-8")))
    finally:
        stream.close()


def _say(log: TextIO | None, message: str) -> None:
    if log is not None:
        print(message, file=log, flush=True)


def _audit(spark, notes: NoteFrame, profile: str | None, partitions: int | None):
    """(results DataFrame of PUBLIC_COLUMNS + code_group, [the cached frames behind it])."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from ..profiles import load_profile
    from .spark_history import context_frame
    from .spark_lines import result_json_column
    from .spark_tasks import CHECKED_SCHEMA, HISTORY_SCHEMA, check_batches, history_batches

    try:
        window_months = int(load_profile(profile)["history"]["frequency_limit"]["window_months"]["value"])
    except (KeyError, TypeError) as exc:
        raise SourceError(f"payer profile {profile or 'medicare'}: no history.frequency_limit.window_months") from exc
    frame = notes.frame
    wanted = partitions or spark.sparkContext.defaultParallelism * PARTITIONS_PER_CORE
    if frame.rdd.getNumPartitions() < wanted:
        frame = frame.repartition(wanted)
    checked = frame.mapInPandas(check_batches(profile, notes), CHECKED_SCHEMA).persist(StorageLevel.MEMORY_AND_DISK)
    # Cross-encounter findings for the counted notes only (the others have none), from their facts and
    # the window context: small rows. They reach the checked notes' own partitions by broadcast when they
    # fit, so the large results text never shuffles; beyond that, by a join.
    counted = checked.where(F.col("counted") & F.col("h_patient").isNotNull() & F.col("h_date").isNotNull()).select(
        "note_id", "h_patient", "h_date", "counted", "says_repeat", "relief_percent", "relief_days",
        "relief_ongoing", "evidence")
    context = context_frame(checked, window_months)
    history = (counted.join(context, "note_id", "left").mapInPandas(history_batches(profile), HISTORY_SCHEMA)
               .persist(StorageLevel.MEMORY_AND_DISK))
    size = history.agg(F.coalesce(F.sum(F.length("history_json")), F.lit(0)).alias("bytes")).collect()[0]["bytes"]
    joined = checked.join(F.broadcast(history) if 2 * size <= BROADCAST_HISTORY_BYTES else history, "note_id", "left")
    complete = F.col("base_complete") & ~F.coalesce(F.col("history_blocks"), F.lit(False))
    warnings = F.when(F.col("warning").isNull(), F.col("warnings")).otherwise(
        F.concat(F.col("warnings"), F.array(F.col("warning"))))
    code_group = F.coalesce("suggested_code", "out_of_family",
                            F.when(F.col("status") == "error", F.lit("error")).otherwise(F.lit("no_code")))
    results = joined.select(
        "note_id", "status", "error", "suggested_code", "out_of_family", complete.alias("complete"), "patient_id",
        "service_date", "billed", "billing_status", "billing_json", "profile", warnings.alias("warnings"),
        F.concat("findings", F.coalesce("history_findings", F.array().cast(joined.schema["findings"].dataType)))
        .alias("findings"),
        "record_json",
        result_json_column(F.col("history_json"), complete, F.col("warning_json")).alias("result_json"),
        F.col("_row").alias("source_row"), code_group.alias("code_group"))
    return results, [checked, history]


def _write_results(results, path: str, partition_by: str):
    """Write results/ as Parquet; returns the schema written (partition column included)."""
    from pyspark.sql import functions as F

    writer_frame = results
    if partition_by == "date":
        writer_frame = results.withColumn("run_date", F.lit(dt.datetime.now(dt.timezone.utc).date().isoformat()))
    writer = writer_frame.write.mode("overwrite").option("compression", COMPRESSION)
    if partition_by == "code":
        writer = writer.partitionBy("code_group")
    elif partition_by == "date":
        writer = writer.partitionBy("run_date")
    writer.parquet(path)
    return writer_frame.schema
