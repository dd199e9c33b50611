"""Spark-engine throughput: `audit_path` on local[1] and local[2], beside the local multi-process audit.

    python benchmarks/spark.py                      # N=20,000 notes, local[1] then local[2], --jobs 1 and 2
    python benchmarks/spark.py --notes 400 --json
    python benchmarks/spark.py --masters 'local[2]' --skip-local

The export is benchmarks/audit.py's generated JSONL of N varied notes (patients, dates, billed codes),
written once and converted once to Parquet with pyarrow (no Spark). The Spark runs audit the Parquet file
(the data-lake case); the local runs audit the JSONL, which holds the same rows. Each Spark run is a fresh
`sys.executable benchmarks/spark.py --_run-one PARQUET OUT MASTER` subprocess calling
notecheck.distributed.spark.audit_path, so it starts its own JVM and SparkSession and is timed end to end
(interpreter and JVM start-up, the worker check, checking, history, writing Parquet and summary.json, and
stopping Spark): notes/s = N / wall time. Start-up share: the seconds to a ready SparkSession (measured in
the child, imports included) over the wall time. Each local run is benchmarks/audit.py's run_audit:
a fresh `notecheck audit EXPORT --out DIR --jobs J --quiet`.

Checks: every Spark run wrote N notes (summary.json's notes_written), and its summary.json equals the
local audit's but for `source` and `engine` ("results agree"). Targets (issue text): local[2] >= 1.6x local[1]
in notes/s; Spark's wall time within 1.5x of the local audit's at the same parallelism (local[N] against
--jobs N, the worse of the pairs measured).
Exit status: 0 when the targets measured pass, 1 when one fails, 2 when a run did not work (a run exited
badly, wrote fewer than N notes, or disagrees with the local audit).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from audit import REPO, print_verdict, run_audit, write_export  # noqa: E402  (benchmarks/audit.py)

TARGET_SCALING = 1.6    # local[2] notes/s over local[1] notes/s
TARGET_OVERHEAD = 1.5   # Spark local[N] wall over local --jobs N wall
# summary.json keys that name the input or the engine; every other key must agree between the engines.
NOT_COMPARED = ("source", "engine")


def run_one(source: str, out: str, master: str) -> int:
    """The child: one Spark audit; prints one JSON line of in-process timings on stdout."""
    t0 = time.perf_counter()
    from notecheck.audit import SourceOptions
    from notecheck.distributed.spark import audit_path
    from notecheck.distributed.spark_session import get_session

    # The same call audit_path makes when given no session; made here so its cost can be reported apart.
    spark = get_session(master)
    session_s = time.perf_counter() - t0
    run = audit_path(source, Path(out), options=SourceOptions(), master=master, spark=spark)
    spark.stop()
    print(json.dumps({"session_s": round(session_s, 2), "audit_s": round(run.seconds, 2), "engine": run.engine}))
    return 0


def parallelism(master: str) -> int | None:
    m = re.fullmatch(r"local\[(\d+)\]", master)
    return int(m[1]) if m else None


def child_env() -> dict:
    env = dict(os.environ)
    # Same import resolution as this process when running from a checkout without `pip install -e .`.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


def read_summary(out: Path) -> dict | None:
    try:
        return json.loads((out / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def run_spark(source: Path, out: Path, master: str, n: int) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--_run-one", str(source), str(out), master]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=child_env())
    wall = time.perf_counter() - start
    timings = {}
    if proc.returncode == 0 and proc.stdout.strip():
        timings = json.loads(proc.stdout.strip().splitlines()[-1])
    summary = read_summary(out)
    run = {"master": master, "notes": n, "exit": proc.returncode, "wall_s": round(wall, 2),
           "notes_per_s": round(n / wall, 1), "written": (summary or {}).get("notes_written", 0),
           "session_s": timings.get("session_s"), "audit_s": timings.get("audit_s"),
           "startup_share": round(timings["session_s"] / wall, 3) if "session_s" in timings else None,
           "summary": summary}
    if proc.returncode != 0:
        run["stderr_tail"] = proc.stderr.strip().splitlines()[-8:]
    return run


def to_parquet(export: Path, parquet: Path) -> None:
    import pyarrow.json as pj
    import pyarrow.parquet as pq

    pq.write_table(pj.read_json(export), parquet)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--notes", type=int, default=20_000, help="notes in the generated export (default 20000)")
    parser.add_argument("--masters", default="local[1],local[2]", help="comma-separated Spark masters "
                        "(default local[1],local[2])")
    parser.add_argument("--skip-local", action="store_true", help="do not run the local audit (no overhead "
                        "ratio, no agreement check)")
    parser.add_argument("--keep", metavar="DIR", help="write the export and audits here and keep them")
    parser.add_argument("--json", action="store_true", help="print the measurements as JSON")
    parser.add_argument("--_run-one", nargs=3, metavar=("SOURCE", "OUT", "MASTER"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._run_one:
        return run_one(*args._run_one)
    masters = [m.strip() for m in args.masters.split(",") if m.strip()]
    # The local audit runs at each parallelism a local[N] master asks for, so the pairs are like for like.
    jobs_list = [] if args.skip_local else sorted({p for p in map(parallelism, masters) if p})
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="notecheck-spark-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        export, parquet = work / "export.jsonl", work / "export.parquet"
        t = time.perf_counter()
        write_export(export, args.notes)
        to_parquet(export, parquet)
        made = time.perf_counter() - t
        spark_runs = []
        for master in masters:
            out = work / f"spark-{master.replace('[', '').replace(']', '').replace('*', 'all')}"
            shutil.rmtree(out, ignore_errors=True)
            spark_runs.append(run_spark(parquet, out, master, args.notes))
        local_runs = []
        for jobs in jobs_list:
            out = work / f"audit-jobs{jobs}"
            shutil.rmtree(out, ignore_errors=True)
            run = run_audit(export, out, jobs, args.notes)
            run["summary"] = read_summary(out)
            local_runs.append(run)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return report(spark_runs, local_runs, args, made)


def agreement(spark_runs: list[dict], local_runs: list[dict]) -> tuple[bool | None, list[str]]:
    """Whether every Spark summary.json equals every local one (but for NOT_COMPARED); the differences."""
    if not local_runs:
        return None, []
    differences = []
    for s in spark_runs:
        for loc in local_runs:
            spark_summary, local_summary = s["summary"] or {}, loc["summary"] or {}
            for key in sorted((spark_summary.keys() | local_summary.keys()) - set(NOT_COMPARED)):
                if spark_summary.get(key) != local_summary.get(key):
                    differences.append(f"{s['master']} vs --jobs {loc['jobs']}: {key} differs")
    return not differences, differences


def report(spark_runs: list[dict], local_runs: list[dict], args, made: float) -> int:
    spark_by_n = {parallelism(r["master"]): r for r in spark_runs if parallelism(r["master"])}
    local_by_n = {r["jobs"]: r for r in local_runs}
    scaling = (spark_by_n[2]["notes_per_s"] / spark_by_n[1]["notes_per_s"]) if {1, 2} <= spark_by_n.keys() else None
    overhead = {n: round(spark_by_n[n]["wall_s"] / local_by_n[n]["wall_s"], 2)
                for n in sorted(spark_by_n.keys() & local_by_n.keys())}
    agree, differences = agreement(spark_runs, local_runs)
    failed = (any(r["exit"] != 0 or r["written"] != r["notes"] for r in spark_runs)
              or any(r["exit"] not in (0, 1) or r["written"] != r["notes"] for r in local_runs)
              or agree is False)
    checks = []
    if scaling is not None:
        checks.append((f"local[2] >= {TARGET_SCALING}x local[1]", scaling >= TARGET_SCALING, f"{scaling:.2f}x"))
    if overhead:
        worst = max(overhead.values())
        checks.append((f"Spark wall <= {TARGET_OVERHEAD}x local at same N", worst <= TARGET_OVERHEAD,
                       f"{worst:.2f}x (worst of N={','.join(map(str, overhead))})"))
    if args.json:
        strip = lambda runs: [{k: v for k, v in r.items() if k != "summary"} for r in runs]  # noqa: E731
        print(json.dumps({"notes": args.notes, "spark_input": "parquet", "local_input": "jsonl",
                          "export_seconds": round(made, 2), "spark_runs": strip(spark_runs),
                          "local_runs": strip(local_runs), "scaling": scaling, "overhead": overhead,
                          "per_core_notes_per_s": spark_by_n[1]["notes_per_s"] if 1 in spark_by_n else None,
                          "results_agree": agree, "differences": differences, "checks": checks}, indent=2))
    else:
        print(f"  python {sys.version.split()[0]}, {os.cpu_count()} cores; export of {args.notes} varied notes "
              f"(JSONL + Parquet) made in {made:.1f} s; Spark reads the Parquet, the local audit the JSONL")
        for r in spark_runs:
            share = f"  start-up {r['session_s']:.1f} s ({r['startup_share']:.0%})" if r["session_s"] else ""
            print(f"  spark {r['master']:9s} {r['notes_per_s']:8.1f} notes/s  wall {r['wall_s']:7.1f} s  "
                  f"exit {r['exit']}  written {r['written']}/{r['notes']}{share}")
            for line in r.get("stderr_tail", []):
                print(f"      {line}")
        for r in local_runs:
            print(f"  local --jobs {r['jobs']}  {r['notes_per_s']:8.1f} notes/s  wall {r['wall_s']:7.1f} s  "
                  f"exit {r['exit']}  written {r['written']}/{r['notes']}")
        if scaling is not None:
            print(f"  scaling local[2] / local[1]: {scaling:.2f}x")
        for n, ratio in overhead.items():
            print(f"  overhead spark local[{n}] wall / local --jobs {n} wall: {ratio:.2f}x")
        if 1 in spark_by_n:
            print(f"  per-core rate (local[1]): {spark_by_n[1]['notes_per_s']:.1f} notes/s")
        if agree is not None:
            print(f"  results agree (summary.json but for {', '.join(NOT_COMPARED)}): {'yes' if agree else 'no'}")
            for line in differences[:10]:
                print(f"      {line}")
    return print_verdict(checks, failed, quiet=args.json)


if __name__ == "__main__":
    sys.exit(main())
