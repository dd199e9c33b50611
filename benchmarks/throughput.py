"""Throughput, start-up time and memory of notecheck, beside spaCy's blank-English tokenizer.

    python benchmarks/throughput.py                 # N=300 copies of the fully documented sample note
    python benchmarks/throughput.py --notes 100 --json

Single process. Reports, from one run on the same note:

* notecheck rate: `NoteChecker().check_many` over N copies (after a warm-up), notes/s;
* tokenizer rate: `spacy.blank("en").tokenizer(text)` over the same N copies, notes/s, and the ratio;
* start-up: a fresh `sys.executable` process that imports notecheck, builds `NoteChecker()` and checks one
  note, timed inside that process so import cost counts; its stderr is captured and its lines counted
  (the pipeline should not log);
* peak memory (ru_maxrss) of this process and of the start-up process, MiB.

Targets (PASS/FAIL): >= 150 notes/s, >= 25% of the tokenizer rate, start-up < 2 s, no stderr output.
Exit status: 0 when every target passes, 1 when one fails, 2 when notecheck could not run at all.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_NOTE = REPO / "corpora" / "sample" / "01_lumbar_ilesi_fluoro_complete.txt"

TARGET_RATE = 150.0  # notes/s
TARGET_RATIO = 0.25  # of the tokenizer rate
TARGET_STARTUP = 2.0  # seconds

# Timed part is exactly the start-up snippet; after printing the time the child also checks the real note
# (read from stdin) so warnings emitted only on real text are caught in the stderr count too.
STARTUP_SNIPPET = (
    "import time;t=time.perf_counter();from notecheck.engine import NoteChecker;"
    "c=NoteChecker();c.check('x','x');print(time.perf_counter()-t, flush=True)\n"
    "import sys, resource\n"
    "r = c.check(sys.stdin.read(), 'startup-real-note')\n"
    "print(r.status)\n"
    "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
)


def _maxrss_mib(raw: int) -> float:
    # Linux reports KiB, macOS bytes.
    return raw / (1024 * 1024) if sys.platform == "darwin" else raw / 1024


def _import_notecheck():
    try:
        from notecheck.engine import NoteChecker
    except ImportError:  # running from a checkout without `pip install -e .`
        sys.path.insert(0, str(REPO))
        from notecheck.engine import NoteChecker
    return NoteChecker


def measure_startup(text: str) -> dict:
    env = dict(os.environ)
    # Same import resolution as this process when running from a checkout without installing.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    wall0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", STARTUP_SNIPPET],
        input=text,
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=600,
    )
    wall = time.perf_counter() - wall0
    stderr_lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    out = proc.stdout.split()
    result = {
        "seconds": None,
        "process_wall_seconds": round(wall, 3),
        "returncode": proc.returncode,
        "stderr_lines": len(stderr_lines),
        "stderr_sample": stderr_lines[:10],
        "real_note_status": None,
        "peak_rss_mib": None,
        "error": None,
    }
    try:
        result["seconds"] = round(float(out[0]), 3)
    except (IndexError, ValueError):
        pass
    if len(out) >= 3:
        result["real_note_status"] = out[1]
        try:
            result["peak_rss_mib"] = round(_maxrss_mib(int(out[2])), 1)
        except ValueError:
            pass
    if proc.returncode != 0:
        last = stderr_lines[-1] if stderr_lines else f"exit status {proc.returncode}"
        result["error"] = last
    return result


def _rates(fn, n: int, repeats: int) -> tuple[float, list[float]]:
    """Median notes/s over `repeats` timed runs of fn(n) (fn returns the number of notes done)."""
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        done = fn(n)
        dt = time.perf_counter() - t0
        rates.append(done / dt if dt > 0 else float("inf"))
    return statistics.median(rates), rates


def measure_tokenizer(text: str, n: int, repeats: int) -> dict:
    import spacy

    nlp = spacy.blank("en")
    tok = nlp.tokenizer
    for _ in range(min(n, 20)):  # warm-up (fills the tokenizer cache, as a long run would)
        tok(text)
    n_tokens = len(tok(text))

    def run(k: int) -> int:
        for _ in range(k):
            tok(text)
        return k

    rate, rates = _rates(run, n, repeats)
    return {"notes_per_s": round(rate, 1), "runs": [round(r, 1) for r in rates], "tokens_per_note": n_tokens,
            "spacy": spacy.__version__}


def measure_notecheck(text: str, n: int, repeats: int) -> dict:
    NoteChecker = _import_notecheck()
    checker = NoteChecker()
    warm = checker.check(text, "warm-up")  # raises if the engine cannot run at all
    for i in range(min(n, 10) - 1):
        checker.check(text, f"warm-up-{i}")
    counts = {"ok": 0, "error": 0}

    def run(k: int) -> int:
        done = 0
        for res in checker.check_many((f"bench-{i}", text) for i in range(k)):
            counts[res.status] = counts.get(res.status, 0) + 1
            done += 1
        return done

    rate, rates = _rates(run, n, repeats)
    return {
        "notes_per_s": round(rate, 1),
        "runs": [round(r, 1) for r in rates],
        "status_counts": counts,  # summed over all timed runs
        "warm_up_status": warm.status,
        "warm_up_error": warm.error,
        "cpt": warm.code.cpt if warm.code else None,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--notes", type=int, default=300, help="copies of the note per timed run (default 300)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs; the median rate is reported (default 3)")
    ap.add_argument("--note", type=Path, default=DEFAULT_NOTE, help="note file to use (default: %(default)s)")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = ap.parse_args(argv)
    if args.notes < 1 or args.repeats < 1:
        ap.error("--notes and --repeats must be >= 1")

    text = args.note.read_text(encoding="utf-8")
    report: dict = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "note": {"path": str(args.note), "words": len(text.split()), "chars": len(text)},
        "notes": args.notes,
        "repeats": args.repeats,
    }

    report["startup"] = measure_startup(text)
    report["tokenizer"] = measure_tokenizer(text, args.notes, args.repeats)
    try:
        report["notecheck"] = measure_notecheck(text, args.notes, args.repeats)
    except Exception as exc:  # engine not implemented yet, or broken: still report the rest
        report["notecheck"] = {"notes_per_s": None, "error": f"{type(exc).__name__}: {exc}"}
    report["peak_rss_mib"] = round(_maxrss_mib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss), 1)

    nc_rate = report["notecheck"].get("notes_per_s")
    tok_rate = report["tokenizer"]["notes_per_s"]
    ratio = nc_rate / tok_rate if nc_rate is not None and tok_rate else None
    report["ratio"] = round(ratio, 4) if ratio is not None else None
    errored = report["notecheck"].get("status_counts", {}).get("error", 0)
    su = report["startup"]

    checks = [
        ("throughput >= %g notes/s" % TARGET_RATE,
         nc_rate is not None and errored == 0 and nc_rate >= TARGET_RATE,
         "n/a" if nc_rate is None else f"{nc_rate:,.1f} notes/s" + (f", {errored} notes errored" if errored else "")),
        ("notecheck >= %d%% of tokenizer rate" % round(TARGET_RATIO * 100),
         ratio is not None and ratio >= TARGET_RATIO,
         "n/a" if ratio is None else f"{ratio:.1%}"),
        ("start-up < %g s" % TARGET_STARTUP,
         su["seconds"] is not None and su["error"] is None and su["seconds"] < TARGET_STARTUP,
         "n/a" if su["seconds"] is None else f"{su['seconds']:.2f} s"),
        ("no stderr lines from the pipeline", su["stderr_lines"] == 0 and su["error"] is None,
         f"{su['stderr_lines']} lines"),
    ]
    report["targets"] = [{"name": n, "pass": bool(p), "value": v} for n, p, v in checks]
    engine_ran = nc_rate is not None
    status = 0 if all(p for _, p, _ in checks) else (1 if engine_ran else 2)
    report["exit_status"] = status

    if args.json:
        print(json.dumps(report, indent=2))
        return status

    nc = report["notecheck"]
    tk = report["tokenizer"]
    print("notecheck throughput benchmark")
    print(f"  python {report['python']}, spaCy {tk['spacy']}, {report['platform']}")
    print(f"  note {args.note} ({report['note']['words']} words, {tk['tokens_per_note']} tokens), "
          f"N={args.notes}, median of {args.repeats} runs, single process")
    print()
    if nc_rate is None:
        print(f"  notecheck check_many        FAILED: {nc.get('error')}")
    else:
        print(f"  notecheck check_many        {nc_rate:>10,.1f} notes/s   runs {nc['runs']}  "
              f"statuses over all runs {nc['status_counts']}, code {nc['cpt']}")
    print(f"  spaCy blank('en') tokenizer {tok_rate:>10,.1f} notes/s   runs {tk['runs']}")
    print(f"  ratio notecheck/tokenizer   {'n/a' if ratio is None else f'{ratio:10.1%}'}")
    if su["seconds"] is None:
        print(f"  start-up (fresh process)    FAILED: {su['error']}")
    else:
        print(f"  start-up (fresh process)    {su['seconds']:>10.2f} s         "
              f"import + NoteChecker() + one check; process wall {su['process_wall_seconds']:.2f} s")
    print(f"  stderr lines at start-up    {su['stderr_lines']:>10d}")
    for line in su["stderr_sample"]:
        print(f"      | {line}")
    child_rss = "n/a" if su["peak_rss_mib"] is None else f"{su['peak_rss_mib']:.1f} MiB"
    print(f"  peak RSS                    {report['peak_rss_mib']:>10.1f} MiB      this process "
          f"(notecheck + tokenizer); start-up process {child_rss}")
    print()
    print("targets")
    for name, passed, value in checks:
        print(f"  {'PASS' if passed else 'FAIL'}  {name:<36} {value}")
    return status


if __name__ == "__main__":
    sys.exit(main())
