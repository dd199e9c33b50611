"""Fuzz the running service with schemathesis, driven by the service's own /openapi.json.

One real `notecheck serve` process on a free loopback port (authentication off, a throwaway feedback
database); schemathesis generates requests for every operation in the schema, valid ones and ones that
break it, sends them over real HTTP and checks each answer: never a 5xx, the status code, content type,
headers and body are the ones the schema documents, and every error body is the service's JSON error
(`{"error", "detail"}`) or a FHIR OperationOutcome. Afterwards the server still answers, its log holds
no traceback, and none of the generated note texts appears in it (notes are PHI: never logged).

Marked slow; bounded by MAX_EXAMPLES per operation and phase so the module stays well under a minute.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import load_all_checks

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
MAX_EXAMPLES = 40  # per operation and mode: ~700 requests in all, about 20 s on a 2-core machine
STARTUP_LIMIT_S = 60.0
# Generated note texts (random Unicode) long enough that finding one in the log cannot be a coincidence.
LEAK_MIN_CHARS = 8

_sent_texts: list[str] = []
_other_strings: list[str] = []


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`notecheck serve` on loopback; yields (base URL, log path) and stops it after the module."""
    tmp = tmp_path_factory.mktemp("fuzz")
    port = _free_port()
    log_path = tmp / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTECHECK_SERVICE_")}
    cmd = [sys.executable, "-m", "notecheck", "serve", "--host", "127.0.0.1", "--port", str(port),
           "--feedback-db", str(tmp / "feedback.sqlite")]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO,
                                env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_LIMIT_S
        while True:
            assert proc.poll() is None, f"notecheck serve exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}"
            assert time.monotonic() < deadline, "notecheck serve did not answer /healthz in time"
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield base, log_path
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@pytest.fixture(scope="module")
def api_schema(server):
    base, _ = server
    return schemathesis.openapi.from_url(f"{base}/openapi.json")


def _error_body_is_documented_shape(ctx, response, case):
    """A 4xx answer is the service's JSON error or a FHIR OperationOutcome, never a bare framework page."""
    if not 400 <= response.status_code < 500:
        return None
    try:
        body = response.json()
    except ValueError:
        raise AssertionError(f"{response.status_code} answer is not JSON") from None
    if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
        assert body.get("issue"), "OperationOutcome without issues"
        return True
    assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"].strip(), (
        f"{response.status_code} answer lacks a non-empty string 'error': keys {sorted(body) if isinstance(body, dict) else type(body).__name__}")
    assert "detail" in body, f"{response.status_code} answer lacks 'detail'"
    return True


def _remember_text(case) -> None:
    """Keep the generated note text of a /v1/check request, to look for it in the log afterwards.

    Hypothesis reuses generated strings across fields and cases; a text that is also (part of) some note id,
    query value, header or path parameter may rightly be logged as that, so those are kept apart too.
    """
    body = case.body
    others = [v for part in (case.query, case.headers, case.path_parameters) for v in (part or {}).values()]
    if isinstance(body, dict):
        others += [v for k, v in body.items() if k != "text"]
    _other_strings.extend(v for v in others if isinstance(v, str))
    text = body if isinstance(body, str) else body.get("text") if isinstance(body, dict) else None
    if isinstance(text, str) and len(text.strip()) >= LEAK_MIN_CHARS:
        _sent_texts.append(text.strip())


def _run_operation(operation, mode: GenerationMode, path_parameters: dict | None = None) -> None:
    checks = schemathesis.checks
    # In the negative mode every request breaks the schema somewhere, so it must be refused with a 4xx.
    rejection = [checks.negative_data_rejection] if mode is GenerationMode.NEGATIVE else []

    # Hypothesis drives each operation directly (schemathesis' pytest loader for fixture-made schemas,
    # from_fixture, needs pytest internals that pytest 9 removed).
    @given(operation.as_strategy(generation_mode=mode, path_parameters=path_parameters))
    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
    def run(case):
        _remember_text(case)
        case.call_and_validate(
            timeout=10,
            checks=[checks.not_a_server_error, checks.status_code_conformance, checks.content_type_conformance,
                    checks.response_headers_conformance, checks.response_schema_conformance, *rejection],
            additional_checks=[_error_body_is_documented_shape],
        )

    run()


def _runs(operations, service_ids: list[str]):
    """(label, operation, fixed path parameters): every operation as generated, and, because a generated
    service id is almost never a real one (404 before the body is read), each CDS route once per real
    service id so the generated hook requests and feedback reach the code that reads them."""
    for op in operations:
        yield op.label, op, None
        names = re.findall(r"\{([^}]+)\}", op.path)
        if op.path.startswith("/cds-services/") and len(names) == 1:
            for sid in service_ids:
                yield f"{op.label} with {names[0]}={sid}", op, {names[0]: sid}


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
def test_every_operation_conforms_to_its_schema_and_never_fails(server, api_schema, mode):
    load_all_checks()
    operations = [result.ok() for result in api_schema.get_all_operations()]
    labels = {re.sub(r"\{[^}]+\}", "{id}", op.label) for op in operations}
    # The schema documents the routes the EHR and the REST clients use (path parameter names aside).
    assert {"GET /cds-services", "POST /cds-services/{id}", "POST /cds-services/{id}/feedback",
            "POST /v1/check", "GET /healthz"} <= labels, sorted(labels)
    service_ids = sorted({s["id"] for s in httpx.get(f"{server[0]}/cds-services", timeout=5).json()["services"]})
    assert service_ids
    failures = []
    for label, operation, path_parameters in _runs(operations, service_ids):
        try:
            _run_operation(operation, mode, path_parameters)
        except Unsatisfiable:
            # Nothing in this operation can be made invalid (e.g. GET /healthz has no parameters).
            assert mode is GenerationMode.NEGATIVE, f"{label}: no valid request could be generated"
        except Exception as exc:  # noqa: BLE001 - collect every operation's failure, then report them all
            failures.append(f"{label}: {exc}")
    assert not failures, f"{len(failures)} operation(s) failed:\n\n" + "\n\n".join(failures)


def test_server_survives_the_fuzzing_and_logs_no_note_text(server):
    # Runs after the fuzz tests (file order): the same server, after every generated request.
    base, log_path = server
    assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
    assert httpx.get(f"{base}/cds-services", timeout=5).json()["services"]
    log_text = log_path.read_text(errors="replace")
    # Booleans and counts only: an assertion diff must never print the log (it could hold what it should not).
    traceback_logged = "Traceback" in log_text
    assert not traceback_logged, f"the server logged a traceback while being fuzzed (see {log_path})"
    texts = [t for t in _sent_texts if not any(t in other for other in _other_strings)]
    assert texts, "the fuzzer sent no note texts long enough to look for"
    leaked = sum(t in log_text for t in texts)
    assert not leaked, f"{leaked} of {len(texts)} generated note texts appear in the server log"
