"""Exports as Spark DataFrames: Parquet, CSV, JSON lines, or a DataFrame the caller already has.

Columns are chosen as the local audit chooses them (`--text-col` and friends, else the common names of
notecheck.audit._tabular.CANDIDATES). Every row becomes one note row of NOTE_COLUMNS: the raw values as
strings (the text as bytes, decoded on the worker by the local readers' own rules), a record number for
ids and locators, and the rename of a repeated note id. A row that cannot be a note (a malformed JSON line,
a text cell that is not a string) is kept as a row with a `problem`, which becomes an error result.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import PurePath

from ..audit._common import SourceError, SourceOptions, describe_choice
from ..audit._tabular import _choose, _guess_delimiter, choose_json_keys

SPARK_FORMATS = ("parquet", "csv", "jsonl", "dataframe")
LABELS = {"parquet": "Parquet", "csv": "CSV", "jsonl": "JSONL", "dataframe": "DataFrame"}
# Rows without a usable id are named <prefix><number>, and located as <file>:<where><number>, as the local
# readers do: CSV rows as a spreadsheet numbers them (the header is row 1), JSONL by line.
FALLBACK = {"parquet": ("row-", "row ", 0), "csv": ("row-", "row ", 1), "jsonl": ("line-", "line ", 0),
            "dataframe": ("row-", "row ", 0)}
ABSENT = {"parquet": "null value", "csv": "empty cell", "jsonl": "field absent", "dataframe": "null value"}

# JSONL columns are chosen from the first objects (notecheck.audit._tabular samples 100); the head read
# for them is this many lines.
_HEAD_LINES = 1000
_LOCAL_MASK = (1 << 33) - 1   # monotonically_increasing_id: partition index above bit 33, row below


@dataclass
class NoteFrame:
    frame: object               # DataFrame of NOTE_COLUMNS
    kind: str
    chosen: dict
    auto: set
    path: str | None
    max_bytes: int
    json_keys: dict | None = None   # JSONL: field -> key (or dotted path), as the local reader picks them

    def describe(self) -> str:
        name = PurePath(self.path).name if self.path else "(DataFrame)"
        return describe_choice(LABELS[self.kind], name, self.chosen, self.auto)


def detect_kind(path: str) -> str:
    lowered = path.rstrip("/").lower()
    if lowered.endswith(".parquet") or lowered.endswith(".pq"):
        return "parquet"
    if lowered.endswith((".csv", ".tsv")):
        return "csv"
    if lowered.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    raise SourceError(f"{path}: --engine spark reads Parquet (.parquet), CSV (.csv/.tsv) or JSON lines (.jsonl); "
                      "say which with --input-format")


def read_export(spark, path: str, kind: str | None = None) -> tuple[object, str]:
    """(DataFrame, kind) of an export path or URI that Spark can read (local, hdfs://, s3a://, dbfs:/)."""
    kind = kind or detect_kind(path)
    try:
        if kind == "parquet":
            return spark.read.parquet(path), kind
        if kind == "jsonl":
            # Lines, parsed on the workers by the local reader's own rules (notecheck.audit._tabular).
            return spark.read.text(path), kind
        if kind == "csv":
            header = spark.read.text(path).limit(1).collect()
            if not header or not header[0][0].strip():
                raise SourceError(f"{path}: no header row on the first line")
            sep = "\t" if path.lower().endswith(".tsv") else _guess_delimiter(header[0][0])
            return (spark.read.option("header", True).option("multiLine", True).option("escape", '"')
                    .option("sep", sep).option("mode", "PERMISSIVE").csv(path), kind)
    except SourceError:
        raise
    except Exception as exc:  # noqa: BLE001 - AnalysisException: path missing, not that format, ...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SourceError(f"{path}: Spark cannot read it as {LABELS.get(kind, kind)} ({first[:300]})") from None
    raise SourceError(f"{path}: unknown input format {kind!r}")


def note_frame(df, options: SourceOptions, kind: str = "dataframe", path: str | None = None) -> NoteFrame:
    """The note rows of a DataFrame (columns chosen as the local audit chooses them)."""
    if kind == "jsonl":
        return _jsonl_frame(df, options, path)
    from pyspark.sql import functions as F

    columns = list(df.columns)
    holder = _Chosen()
    picked = _choose(list(columns), options, holder, PurePath(path or "DataFrame"))
    chosen = {key: columns[i] for key, i in picked.items()}
    types = dict(df.dtypes)
    prefix, where, offset = FALLBACK[kind]
    name = PurePath(path).name if path else None

    frame = df.withColumn("_mid", F.monotonically_increasing_id())
    number = _record_numbers(frame) + F.lit(offset)
    text = chosen["text"]
    text_type = types[text]
    is_text = text_type in ("string", "binary") or text_type.startswith(("varchar(", "char("))
    problem = F.lit(None).cast("string") if is_text else F.lit(f"note text in {text} is not a string")
    data = F.col(f"`{text}`").cast("binary") if is_text else F.lit(None).cast("binary")
    if kind == "csv":
        # Spark reads an empty CSV cell as null; the local reader reads "", an "empty note".
        data = F.coalesce(data, F.lit(b""))
    fallback = F.concat(F.lit(prefix), number.cast("string"))
    locator = F.concat(F.lit(f"{name}:{where}" if name else where), number.cast("string"))
    notes = frame.select(
        F.col("_mid").alias("_row"),
        number.alias("record_no"),
        F.lit(None).cast("binary").alias("raw_line"),
        _as_text(chosen.get("id"), types).alias("id_value"),
        data.alias("data"),
        problem.alias("problem"),
        _as_text(chosen.get("patient"), types).alias("patient"),
        _as_text(chosen.get("date"), types).alias("date"),
        _as_text(chosen.get("billed"), types).alias("billed"),
        fallback.alias("fallback_id"),
        locator.alias("locator"),
    )
    return NoteFrame(_renamed(notes), kind, chosen, holder.auto, path, options.max_bytes)


def _jsonl_frame(lines, options: SourceOptions, path: str | None) -> NoteFrame:
    """JSON lines: each non-blank line a note row carrying the raw line; the worker parses it."""
    from pyspark.sql import functions as F

    holder = _Chosen()
    head = (row[0] for row in lines.limit(_HEAD_LINES).collect())
    keys = choose_json_keys(_objects(head), options, holder, PurePath(path or "JSONL"))
    frame = lines.withColumn("_mid", F.monotonically_increasing_id())
    number = _record_numbers(frame)
    value = F.regexp_replace("value", "^\uFEFF", "")
    id_key = keys.get("id")
    id_value = F.get_json_object(value, f"$.{id_key}") if id_key else F.lit(None).cast("string")
    null = F.lit(None)
    notes = frame.where(~F.col("value").rlike(r"^\s*$")).select(
        F.col("_mid").alias("_row"), number.alias("record_no"), F.col("value").cast("binary").alias("raw_line"),
        id_value.alias("id_value"), null.cast("binary").alias("data"), null.cast("string").alias("problem"),
        null.cast("string").alias("patient"), null.cast("string").alias("date"), null.cast("string").alias("billed"),
        F.concat(F.lit("line-"), number.cast("string")).alias("fallback_id"),
        null.cast("string").alias("locator"))
    chosen = {key: holder.chosen[key] for key in keys}
    return NoteFrame(_renamed(notes), "jsonl", chosen, holder.auto, path, options.max_bytes, keys)


def _objects(lines):
    for text in lines:
        if text and text.strip():
            try:
                yield json.loads(text.removeprefix("\ufeff"))
            except (ValueError, RecursionError):
                continue


class _Chosen:
    """What notecheck.audit._tabular._choose records its choice on."""

    def __init__(self) -> None:
        self.chosen: dict = {}
        self.auto: set = set()


def _as_text(column: str | None, types: dict):
    """A column as the text the local readers make of a value (notecheck.audit._tabular._scalar)."""
    from pyspark.sql import functions as F

    if column is None:
        return F.lit(None).cast("string")
    kind = types[column]
    col = F.col(f"`{column}`")
    if kind.startswith("array<"):
        return F.concat_ws(",", col.cast("array<string>"))
    if kind.startswith(("struct<", "map<")) or kind == "boolean":
        return F.lit(None).cast("string")
    if kind == "binary":
        return F.decode(col, "UTF-8")
    return col.cast("string")


def _record_numbers(frame):
    """1-based record number in the frame's own order: per-partition offsets of monotonically_increasing_id."""
    from pyspark.sql import functions as F

    partition = F.shiftright("_mid", 33)
    counts = sorted((int(r["p"]), int(r["n"])) for r in
                    frame.groupBy(partition.alias("p")).agg(F.count(F.lit(1)).alias("n")).collect())
    offsets, total = [], 0
    for p, n in counts:
        offsets += [F.lit(p), F.lit(total)]
        total += n
    if not offsets:
        return F.lit(0).cast("long")
    base = F.element_at(F.create_map(*offsets), partition)
    return base + F.col("_mid").bitwiseAND(F.lit(_LOCAL_MASK)) + F.lit(1)


def _renamed(notes):
    """Add dup_n: for the 2nd, 3rd... row with one note id (in record order), the n of "<id>#<n>"."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    effective = F.coalesce(F.nullif(F.regexp_replace("id_value", r"(?U)^\s+|\s+$", ""), F.lit("")), F.col("fallback_id"))
    ids = notes.select("_row", effective.alias("effective_id"))
    repeats = (ids.withColumn("n", F.row_number().over(Window.partitionBy("effective_id").orderBy("_row")))
               .where(F.col("n") > 1).select("_row", F.col("n").alias("dup_n")))
    found = repeats.limit(100_001).count()
    if found == 0:
        return notes.withColumn("dup_n", F.lit(None).cast("int"))
    renames = F.broadcast(repeats) if found <= 100_000 else repeats
    return notes.join(renames, "_row", "left")
