"""Latency and throughput of the EHR hook service (`notecheck serve`) under concurrent clients on loopback.

    python benchmarks/service.py                          # --workers 2, 300 requests per level and endpoint
    python benchmarks/service.py --requests 1000 --json   # longer run, machine-readable
    python benchmarks/service.py --url http://127.0.0.1:8080   # an already running server (no start-up time)

What it does, in one run:

* starts `notecheck serve --host 127.0.0.1 --port <free port> --workers 2` (authentication off, a throwaway
  feedback database, NOTECHECK_SERVICE_* variables of this shell not passed on, so the run is reproducible)
  and times start-up: from launching the process to the first 200 answer to a real check of the note;
* warms every worker up, then for each endpoint (POST /cds-services/<id> for the custom sign-time hook with
  the draft note in `context`, POST /cds-services/<id> for `order-sign` with the note in `prefetch`, and
  POST /v1/check with the note as text/plain) and each concurrency level (1, 8, 32) sends a fixed number of
  requests from that many concurrent keep-alive clients (httpx, asyncio) and prints requests/s, p50/p95/p99
  and max latency (send to last body byte) and the errors (non-200 answers, answers of the wrong shape,
  timeouts, connection errors);
* stops the server and checks its log holds none of the note's text.

The client runs on the same machine as the server and takes CPU from it, so the figures are a lower bound
for a server with a remote client. The note is a ~300-word sample note (corpora/sample/05_caudal_ultrasound.txt).

Targets (PASS/FAIL): p50 <= 15 ms at concurrency 1 and p99 <= 100 ms at concurrency 8 on every endpoint, no
errors at concurrency 32 (none at all, in fact), start-up to first answer <= 5 s, no note text in the log.
Exit status: 0 when every target passes, 1 when one fails, 2 when the server could not be started or used.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import math
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
DEFAULT_NOTE = REPO / "corpora" / "sample" / "05_caudal_ultrasound.txt"

TARGET_P50_C1_MS = 15.0
TARGET_P99_C8_MS = 100.0
TARGET_STARTUP_S = 5.0
STARTUP_LIMIT_S = 60.0  # give up (exit 2) when the server has not answered by then
REQUEST_TIMEOUT_S = 10.0
LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def serve_command() -> list[str]:
    # The console script next to this interpreter is what a user runs; `-m notecheck` is the same CLI when
    # running from a checkout whose venv has no script.
    script = Path(sys.executable).with_name("notecheck")
    return [str(script)] if script.exists() else [sys.executable, "-m", "notecheck"]


def document_reference(text: str, doc_id: str = "bench-note") -> dict:
    return {
        "resourceType": "DocumentReference",
        "id": doc_id,
        "status": "current",
        "docStatus": "preliminary",
        "type": {"coding": [{"system": "http://loinc.org", "code": "28570-0", "display": "Procedure note"}]},
        "subject": {"reference": "Patient/bench-patient"},
        "content": [{"attachment": {"contentType": "text/plain; charset=utf-8",
                                    "data": base64.b64encode(text.encode("utf-8")).decode("ascii")}}],
    }


def _context(hook: str) -> dict:
    context = {"userId": "Practitioner/bench-user", "patientId": "bench-patient", "encounterId": "bench-encounter"}
    if hook == "order-sign":
        # order-sign requires the draft orders being signed; a draft procedure order for the injection.
        context["draftOrders"] = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {
            "resourceType": "ServiceRequest", "id": "bench-order", "status": "draft", "intent": "order",
            "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "62323"}]},
            "subject": {"reference": "Patient/bench-patient"}}}]}
    return context


def hook_request(service: dict, text: str) -> dict:
    """A CDS Hooks request for `service` carrying the note where its hook expects it.

    order-sign: in prefetch (a searchset Bundle), under every prefetch key whose template queries
    DocumentReference. Any other
    (custom, sign-time) hook: the draft note in context.draftNote, not yet on the FHIR server.
    """
    hook = service["hook"]
    body: dict = {"hook": hook, "hookInstance": str(uuid.uuid4()), "context": _context(hook)}
    doc = document_reference(text)
    if hook == "order-sign":
        # A prefetch template is a FHIR search, so the EHR fills it with a searchset Bundle.
        found = {"resourceType": "Bundle", "type": "searchset", "total": 1, "entry": [{"resource": doc}]}
        keys = [k for k, q in (service.get("prefetch") or {}).items() if str(q).startswith("DocumentReference")]
        body["prefetch"] = {k: found for k in keys or ["note"]}
    else:
        body["context"]["draftNote"] = doc
    return body


def _cds_ok(payload: object) -> bool:
    return isinstance(payload, dict) and isinstance(payload.get("cards"), list)


def _check_ok(payload: object) -> bool:
    return isinstance(payload, dict) and payload.get("status") == "ok"


def build_endpoints(base: str, text: str) -> list[dict]:
    """Discover the services and build one request per endpoint to drive."""
    services = httpx.get(f"{base}/cds-services", timeout=REQUEST_TIMEOUT_S).raise_for_status().json()["services"]
    endpoints = []
    seen_hooks = set()
    # The custom sign-time hook first (the note itself travels in the request), then order-sign.
    for service in sorted(services, key=lambda s: s["hook"] == "order-sign"):
        if service["hook"] in seen_hooks:
            continue
        seen_hooks.add(service["hook"])
        body = json.dumps(hook_request(service, text)).encode()
        endpoints.append({"name": f"cds {service['id']} ({service['hook']})", "path": f"/cds-services/{service['id']}",
                          "headers": {"content-type": "application/json"}, "content": body, "ok": _cds_ok})
    endpoints.append({"name": "POST /v1/check (text/plain)", "path": "/v1/check",
                      "headers": {"content-type": "text/plain; charset=utf-8"}, "content": text.encode(),
                      "ok": _check_ok})
    return endpoints


def start_server(workers: int, log_path: Path, db_path: Path) -> tuple[subprocess.Popen, str, list[str]]:
    port = free_port()
    cmd = serve_command() + ["serve", "--host", LOOPBACK, "--port", str(port), "--workers", str(workers),
                             "--feedback-db", str(db_path)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTECHECK_SERVICE_")}
    with open(log_path, "wb") as log:
        # Own session so that stopping it (and its uvicorn workers) never touches this process's group.
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                cwd=REPO, start_new_session=True)
    return proc, f"http://{LOOPBACK}:{port}", cmd


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)  # uvicorn's graceful shutdown; it stops its workers too
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the group started above, nothing else
        proc.wait(timeout=5)


def wait_first_answer(proc: subprocess.Popen | None, base: str, text: str, t0: float) -> float:
    """Seconds from t0 until a real check of the note answers 200; raises RuntimeError on failure."""
    with httpx.Client(timeout=REQUEST_TIMEOUT_S) as client:
        while time.perf_counter() - t0 < STARTUP_LIMIT_S:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"the server exited with status {proc.returncode} before answering")
            try:
                r = client.post(f"{base}/v1/check", content=text.encode(),
                                headers={"content-type": "text/plain; charset=utf-8"})
                if r.status_code == 200:
                    return time.perf_counter() - t0
            except httpx.TransportError:
                pass  # not listening yet
            time.sleep(0.02)
    raise RuntimeError(f"no answer within {STARTUP_LIMIT_S:.0f} s")


def percentile(sorted_values: list[float], p: float) -> float | None:
    # Nearest rank: the smallest value with at least p% of the values at or below it.
    if not sorted_values:
        return None
    return sorted_values[max(0, math.ceil(p / 100 * len(sorted_values)) - 1)]


async def drive(base: str, endpoint: dict, concurrency: int, n: int) -> dict:
    """n requests to one endpoint from `concurrency` concurrent keep-alive clients."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    latencies: list[float] = []
    errors: dict[str, int] = {}
    remaining = n

    async def client_loop(client: httpx.AsyncClient) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            t = time.perf_counter()
            try:
                r = await client.post(endpoint["path"], content=endpoint["content"], headers=endpoint["headers"])
                dt = time.perf_counter() - t
                if r.status_code != 200:
                    reason = f"HTTP {r.status_code}"
                elif not endpoint["ok"](r.json()):
                    reason = "answer of the wrong shape"
                else:
                    latencies.append(dt)
                    continue
            except (httpx.HTTPError, ValueError) as exc:
                reason = type(exc).__name__
            errors[reason] = errors.get(reason, 0) + 1

    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=REQUEST_TIMEOUT_S) as client:
        t0 = time.perf_counter()
        await asyncio.gather(*(client_loop(client) for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    latencies.sort()
    ms = [v * 1000 for v in latencies]
    return {"endpoint": endpoint["name"], "concurrency": concurrency, "requests": n, "ok": len(latencies),
            "errors": sum(errors.values()), "error_kinds": errors, "seconds": round(wall, 3),
            "requests_per_s": round(n / wall, 1) if wall > 0 else None,
            **{f"p{p}_ms": (round(percentile(ms, p), 2) if ms else None) for p in (50, 95, 99)},
            "max_ms": round(ms[-1], 2) if ms else None}


def note_in_log(log_text: str, text: str) -> bool:
    # Any line of the note of 20+ characters (or the whole note if shorter) showing up in the log is a leak.
    pieces = [ln.strip() for ln in text.splitlines() if len(ln.strip()) >= 20] or [text.strip()]
    return any(p in log_text for p in pieces)


def evaluate(results: list[dict], startup_s: float | None, leaked: bool | None) -> list[dict]:
    checks = []
    for r in results:
        if r["concurrency"] == 1:
            checks.append({"target": f"p50 <= {TARGET_P50_C1_MS:g} ms at c=1, {r['endpoint']}", "value": r["p50_ms"],
                           "pass": r["p50_ms"] is not None and r["p50_ms"] <= TARGET_P50_C1_MS})
        if r["concurrency"] == 8:
            checks.append({"target": f"p99 <= {TARGET_P99_C8_MS:g} ms at c=8, {r['endpoint']}", "value": r["p99_ms"],
                           "pass": r["p99_ms"] is not None and r["p99_ms"] <= TARGET_P99_C8_MS})
        checks.append({"target": f"no errors at c={r['concurrency']}, {r['endpoint']}", "value": r["errors"],
                       "pass": r["errors"] == 0})
    if startup_s is not None:
        checks.append({"target": f"start-up to first answer <= {TARGET_STARTUP_S:g} s", "value": round(startup_s, 3),
                       "pass": startup_s <= TARGET_STARTUP_S})
    if leaked is not None:
        checks.append({"target": "no note text in the server log", "value": "found" if leaked else "none found",
                       "pass": not leaked})
    return checks


def conditions(args: argparse.Namespace, note: Path, words: int) -> dict:
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
            "load_average_at_start": load, "workers": args.workers, "requests_per_level": args.requests,
            "concurrency": args.concurrency, "note": str(note.relative_to(REPO) if note.is_relative_to(REPO) else note),
            "note_words": words, "client": f"httpx {httpx.__version__} (asyncio, keep-alive), same machine"}


def print_report(report: dict) -> None:
    c = report["conditions"]
    print(f"notecheck service benchmark: Python {c['python']}, {c['cpus']} CPUs, load {c['load_average_at_start']}, "
          f"--workers {c['workers']}, {c['requests_per_level']} requests per level, note {c['note']} "
          f"({c['note_words']} words), client {c['client']}")
    if report.get("startup_s") is not None:
        print(f"start-up to first answer: {report['startup_s']:.2f} s   ({' '.join(report['command'])})")
    print(f"{'endpoint':<60} {'c':>3} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8} errors")
    for r in report["results"]:
        kinds = ", ".join(f"{k}: {v}" for k, v in r["error_kinds"].items())
        print(f"{r['endpoint']:<60} {r['concurrency']:>3} {r['requests_per_s']:>8} {r['p50_ms']!s:>8} "
              f"{r['p95_ms']!s:>8} {r['p99_ms']!s:>8} {r['max_ms']!s:>8} {r['errors']}{f' ({kinds})' if kinds else ''}")
    if report.get("log_lines") is not None:
        print(f"server log: {report['log_lines']} lines, note text in it: {'YES' if report['note_in_log'] else 'no'}")
    for chk in report["targets"]:
        print(f"{'PASS' if chk['pass'] else 'FAIL'}  {chk['target']}: {chk['value']}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=300, help="requests per concurrency level and endpoint")
    ap.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8, 32],
                    help="comma-separated concurrency levels (default 1,8,32)")
    ap.add_argument("--workers", type=int, default=2, help="uvicorn worker processes (default 2)")
    ap.add_argument("--note", type=Path, default=DEFAULT_NOTE, help="the note to send")
    ap.add_argument("--url", help="benchmark an already running server instead of starting one")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = ap.parse_args(argv)
    if args.requests < 1 or any(c < 1 for c in args.concurrency):
        ap.error("--requests and --concurrency must be positive")
    text = args.note.read_text(encoding="utf-8")
    report: dict = {"conditions": conditions(args, args.note.resolve(), len(text.split())), "startup_s": None}

    with tempfile.TemporaryDirectory(prefix="notecheck-bench-") as tmp:
        log_path = Path(tmp) / "server.log"
        proc = None
        try:
            if args.url:
                base = args.url.rstrip("/")
                wait_first_answer(None, base, text, time.perf_counter())
            else:
                t0 = time.perf_counter()
                proc, base, report["command"] = start_server(args.workers, log_path, Path(tmp) / "feedback.sqlite")
                report["startup_s"] = round(wait_first_answer(proc, base, text, t0), 3)
            endpoints = build_endpoints(base, text)
            # Warm-up, not measured: enough concurrent requests that every worker has checked notes.
            for ep in endpoints:
                asyncio.run(drive(base, ep, max(2, 2 * args.workers), 10 * args.workers))
            report["results"] = [asyncio.run(drive(base, ep, c, args.requests))
                                 for ep in endpoints for c in args.concurrency]
        except (RuntimeError, httpx.HTTPError, KeyError, ValueError, OSError) as exc:
            print(f"benchmark could not run: {type(exc).__name__}: {exc}", file=sys.stderr)
            if proc is not None:
                stop_server(proc)
                tail = log_path.read_text(errors="replace")[-2000:]
                # The log should hold no note text; if it does, it is not echoed here either.
                print("server log tail:\n" + (tail if not note_in_log(tail, text) else "(withheld: holds note text)"),
                      file=sys.stderr)
            return 2
        finally:
            if proc is not None:
                stop_server(proc)
        leaked = None
        if proc is not None:
            log_text = log_path.read_text(errors="replace")
            report["log_lines"] = len([ln for ln in log_text.splitlines() if ln.strip()])
            report["note_in_log"] = leaked = note_in_log(log_text, text)

    report["targets"] = evaluate(report["results"], report["startup_s"], leaked)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)
    return 0 if all(c["pass"] for c in report["targets"]) else 1


if __name__ == "__main__":
    sys.exit(main())
