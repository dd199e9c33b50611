"""Batch-audit throughput and memory: `notecheck audit` with --jobs 1 and --jobs 2 on a generated export.

    python benchmarks/audit.py                      # N=10,000 notes, --jobs 1 then --jobs 2
    python benchmarks/audit.py --notes 100000 --jobs 2
    python benchmarks/audit.py --notes 2000 --json

The export is a JSONL file of N notes made from the sample notes in corpora/sample, each varied so no two
are the same text: interlaminar levels moved within their region, left/right swapped, steroid and local
doses changed, pain scores changed; patients, dates of service and billed codes assigned (about one claim
in eight billed higher than the note supports). Each run is a fresh `notecheck audit EXPORT --out DIR
--jobs J --quiet` subprocess, timed end to end (start-up, checking, history, the final pass and the
report): notes/s = N / wall time. Memory: each process's peak RSS (VmHWM, sampled from /proc while it
runs), for the main process and every worker, plus the children's ru_maxrss as a cross-check.

Targets (issue 4): --jobs 2 >= 1.7x --jobs 1; peak RSS per worker < 500 MB and flat as N grows.
Exit status: 0 when the targets measured pass, 1 when one fails, 2 when an audit did not run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "corpora" / "sample"
TARGET_RATIO = 1.7
TARGET_WORKER_MIB = 500.0

LEVELS = {
    "C": ["C5-C6", "C6-C7", "C7-T1"],
    "T": ["T7-T8", "T8-T9", "T9-T10", "T10-T11"],
    "L": ["L2-L3", "L3-L4", "L4-L5", "L5-S1"],
}
_LEVEL = re.compile(r"\b([CTL])(\d{1,2})-([CTLS]?)(\d{1,2})\b")
_SIDE = re.compile(r"\b(left|right|Left|Right|LEFT|RIGHT)\b")
_STEROID = re.compile(r"\b(80|40) (mg|MG)\b")
_DEXA = re.compile(r"\b(10|6|4) (mg|MG)\b")
_PAIN = re.compile(r"\b([2-9])/10\b")
# What a coder bills for each sample note (corpora/sample/README.md), and a higher code for mismatches.
BILLED = {"01": "62323", "02": "62321", "03": "62323", "04": "62322", "05": "62322", "06": "62321",
          "07": "62324", "08": "62323", "09": "62323", "10": "64483", "11": "62323", "12": "62323"}
HIGHER = {"62322": "62323", "62320": "62321", "62323": "62327", "62321": "62325", "62324": "62325"}


def vary(text: str, rng: random.Random) -> str:
    """One plausible variant of a note: same structure and codes, different facts."""
    moves: dict[str, str] = {}

    def level(m: re.Match) -> str:
        old = m.group(0)
        if old not in moves:
            moves[old] = rng.choice(LEVELS[m.group(1)]) if rng.random() < 0.6 else old
        new = moves[old]
        return new if old.count("-") == new.count("-") and len(old) >= 4 else old

    flip = rng.random() < 0.5
    swap = {"left": "right", "right": "left", "Left": "Right", "Right": "Left", "LEFT": "RIGHT", "RIGHT": "LEFT"}
    text = _LEVEL.sub(level, text)
    if flip:
        text = _SIDE.sub(lambda m: swap[m.group(1)], text)
    text = _STEROID.sub(lambda m: f"{rng.choice(['40', '80'])} {m.group(2)}", text)
    text = _DEXA.sub(lambda m: f"{rng.choice(['4', '6', '10'])} {m.group(2)}", text)
    return _PAIN.sub(lambda m: f"{rng.randint(2, 9)}/10", text)


def write_export(path: Path, n: int, seed: int = 4) -> None:
    rng = random.Random(seed)
    notes = [(p.name[:2], p.read_text(encoding="utf-8")) for p in sorted(SAMPLE.glob("*.txt"))]
    patients = max(1, n // 6)   # about six encounters per patient: the frequency rule has work to do
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            key, text = notes[i % len(notes)]
            billed = BILLED[key]
            if rng.random() < 0.125:
                billed = HIGHER.get(billed, billed)
            row = {"note_id": f"bench-{i:06d}", "text": vary(text, rng), "patient_id": f"P{rng.randrange(patients):05d}",
                   "service_date": f"{rng.choice([2023, 2024])}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
                   "billed_code": billed}
            fh.write(json.dumps(row) + "\n")


class PeakRss:
    """Samples VmHWM (peak RSS) of a process and its children every 0.2 s while it runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peaks: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for pid in [self.pid, *self._children(self.pid)]:
                hwm = self._hwm(pid)
                if hwm is not None:
                    self.peaks[pid] = max(self.peaks.get(pid, 0.0), hwm)
            self._stop.wait(0.2)

    @staticmethod
    def _children(pid: int) -> list[int]:
        kids: list[int] = []
        try:
            for task in Path(f"/proc/{pid}/task").iterdir():
                kids += [int(k) for k in (task / "children").read_text().split()]
        except OSError:
            pass
        return kids

    @staticmethod
    def _hwm(pid: int) -> float | None:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except (OSError, ValueError):
            return None
        return None

    def stop(self) -> dict[int, float]:
        self._stop.set()
        self._thread.join()
        return self.peaks


def run_audit(export: Path, out: Path, jobs: int, n: int) -> dict:
    cmd = [sys.executable, "-m", "notecheck", "audit", str(export), "--out", str(out), "--jobs", str(jobs), "--quiet"]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=REPO)
    sampler = PeakRss(proc.pid)
    _, err = proc.communicate()
    wall = time.perf_counter() - start
    peaks = sampler.stop()
    written = sum(1 for _ in open(out / "results.jsonl", encoding="utf-8")) if (out / "results.jsonl").exists() else 0
    main_peak = peaks.pop(proc.pid, 0.0)
    # The spawn context's resource tracker is a child too, but tiny; workers are the ones that load spaCy.
    workers = sorted((mib for mib in peaks.values() if mib > 50), reverse=True)
    return {"jobs": jobs, "notes": n, "exit": proc.returncode, "wall_s": round(wall, 2),
            "notes_per_s": round(n / wall, 1), "written": written,
            "peak_rss_main_mib": round(main_peak, 1), "peak_rss_workers_mib": [round(m, 1) for m in workers],
            "closing": [line for line in err.splitlines() if line.startswith("read ")]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--notes", type=int, default=10_000, help="notes in the generated export (default 10000)")
    parser.add_argument("--jobs", default="1,2", help="comma-separated --jobs values to run (default 1,2)")
    parser.add_argument("--keep", metavar="DIR", help="write the export and audits here and keep them")
    parser.add_argument("--json", action="store_true", help="print the measurements as JSON")
    args = parser.parse_args(argv)
    jobs_list = [int(j) for j in args.jobs.split(",") if j.strip()]
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="notecheck-audit-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        export = work / "export.jsonl"
        t = time.perf_counter()
        write_export(export, args.notes)
        made = time.perf_counter() - t
        runs = []
        for jobs in jobs_list:
            out = work / f"audit-jobs{jobs}"
            shutil.rmtree(out, ignore_errors=True)
            runs.append(run_audit(export, out, jobs, args.notes))
        children_max = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return report(runs, args, made, children_max)


def report(runs: list[dict], args, made: float, children_max: float) -> int:
    by_jobs = {r["jobs"]: r for r in runs}
    ratio = (by_jobs[2]["notes_per_s"] / by_jobs[1]["notes_per_s"]) if 1 in by_jobs and 2 in by_jobs else None
    failed = any(r["exit"] not in (0, 1) or r["written"] != r["notes"] for r in runs)
    worker_peaks = [m for r in runs for m in (r["peak_rss_workers_mib"] or [r["peak_rss_main_mib"]])]
    checks = []
    if ratio is not None:
        checks.append((f"--jobs 2 >= {TARGET_RATIO}x --jobs 1", ratio >= TARGET_RATIO, f"{ratio:.2f}x"))
    if worker_peaks:
        checks.append((f"peak RSS per worker < {TARGET_WORKER_MIB:.0f} MB", max(worker_peaks) < TARGET_WORKER_MIB,
                       f"{max(worker_peaks):.0f} MiB"))
    if args.json:
        print(json.dumps({"runs": runs, "ratio": ratio, "children_max_rss_mib": round(children_max, 1),
                          "export_seconds": round(made, 2), "checks": checks}, indent=2))
    else:
        print(f"  python {sys.version.split()[0]}, {os.cpu_count()} cores; export of {args.notes} varied notes "
              f"made in {made:.1f} s")
        for r in runs:
            workers = ", ".join(f"{m:.0f}" for m in r["peak_rss_workers_mib"]) or "-"
            print(f"  --jobs {r['jobs']}: {r['notes_per_s']:8.1f} notes/s  wall {r['wall_s']:7.1f} s  exit {r['exit']}  "
                  f"written {r['written']}/{r['notes']}  peak RSS main {r['peak_rss_main_mib']:.0f} MiB, "
                  f"workers [{workers}] MiB")
            for line in r["closing"]:
                print(f"      {line}")
        if ratio is not None:
            print(f"  scaling --jobs 2 / --jobs 1: {ratio:.2f}x")
        print(f"  children's max RSS (ru_maxrss): {children_max:.0f} MiB")
    return print_verdict(checks, failed, quiet=args.json)


def print_verdict(checks: list[tuple[str, bool, str]], failed: bool, quiet: bool = False) -> int:
    """Print the target checks (unless quiet); the exit status: 2 a run failed, 1 a target failed, else 0."""
    if not quiet:
        print("targets")
        for name, ok, value in checks:
            print(f"  {'PASS' if ok else 'FAIL'}  {name:38s} {value}")
    if failed:
        return 2
    return 0 if all(ok for _, ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
