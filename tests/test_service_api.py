"""The CDS Hooks service and REST API, end to end: `python -m notecheck serve` on a free loopback port, real
HTTP (httpx), real SQLite feedback file, real ES384 keys and bearer JWTs (tests/service_helpers.py).

One server for the module, started with --trusted-issuers so every call goes through authentication; the
client mints a fresh token (new jti, aud = base URL + path) per request. Every note sent carries MARKER so
the last test can prove no note text reached the server's stdout/stderr.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time
import uuid

import httpx
import jwt
import pytest
from service_helpers import (
    COMPLETE, CUSTOM_HOOK, INCOMPLETE, ISSUER, KID, MARKER, NAMESPACE, NOT_EPIDURAL, SPANISH, TRANSFORAMINAL,
    Server, b64, custom_request, doc_ref, order_sign_request, searchset,
)

from notecheck.record import NoteResult

@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("service"))
    yield srv
    srv.stop()


def hook(server: Server, service: str, body: dict) -> httpx.Response:
    return server.client.post(f"/cds-services/{service}", json=body)


def cards_of(response: httpx.Response) -> list[dict]:
    assert response.status_code == 200, response.text
    return response.json()["cards"]


def assert_no_nulls(value, where="$"):
    """CDS Hooks: elements are never null or empty unless the spec says so (cards may be [])."""
    if isinstance(value, dict):
        for k, v in value.items():
            assert v is not None, f"{where}.{k} is null"
            assert_no_nulls(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            assert_no_nulls(v, f"{where}[{i}]")


# ---------------------------------------------------------------- start-up and discovery

def test_starts_within_five_seconds_with_authentication_on(server):
    assert server.startup_s <= 5.0, f"start-up to first answer took {server.startup_s:.2f} s"
    assert "authentication on (1 trusted issuer(s))" in server.logs()


def test_discovery_lists_order_sign_and_the_custom_hook(server):
    r = server.client.get("/cds-services")
    assert r.status_code == 200
    services = {s["id"]: s for s in r.json()["services"]}
    assert services["epidural-note-check"]["hook"] == "order-sign"
    assert services["procedure-note-sign"]["hook"] == CUSTOM_HOOK
    template = services["epidural-note-check"]["prefetch"]["note"]
    assert template.startswith("DocumentReference?") and "{{context.patientId}}" in template and "28570-0" in template
    for s in services.values():
        assert s["title"] and s["description"] and s["usageRequirements"]
    assert_no_nulls(r.json())


def test_openapi_and_docs_are_served_without_a_token(server):
    with httpx.Client(base_url=server.base, timeout=10) as anonymous:
        spec = anonymous.get("/openapi.json").json()
        assert {"/cds-services", "/cds-services/{service_id}", "/cds-services/{service_id}/feedback",
                "/v1/check", "/healthz"} <= set(spec["paths"])
        assert "text/plain" in spec["paths"]["/v1/check"]["post"]["requestBody"]["content"]
        assert anonymous.get("/docs").status_code == 200
        assert anonymous.get("/healthz").json()["status"] == "ok"


# ---------------------------------------------------------------- cards

def test_custom_hook_with_the_draft_note_in_context(server):
    hi = str(uuid.uuid4())
    r = hook(server, "procedure-note-sign", custom_request(doc_ref(INCOMPLETE), hi))
    cards = cards_of(r)
    assert_no_nulls(r.json())
    by_rule = {c["source"]["topic"]["code"]: c for c in cards}
    assert set(by_rule) == {"pain_score_post", "consent", "code"}
    assert by_rule["pain_score_post"]["indicator"] == "critical"   # payer-required
    assert by_rule["consent"]["indicator"] == "warning"            # good practice
    info = by_rule["code"]
    assert info["indicator"] == "info" and "62323" in info["summary"] and cards[-1] is not None
    for card in cards:
        assert 0 < len(card["summary"]) < 140
        assert card["source"]["label"]
        assert card["uuid"] == str(uuid.uuid5(NAMESPACE, f"{hi}/{card['source']['topic']['code']}"))
    # The info card quotes the deciding evidence, with offsets into the note as sent.
    assert "\u201cL4-5\u201d" in info["detail"]
    start = INCOMPLETE.index("L4-5")
    assert f"(characters {start}\u2013{start + 4})" in info["detail"]
    # A finding card: its rule's citation, the question, override reasons with displays, a Task suggestion.
    pain = by_rule["pain_score_post"]
    assert "L39240" in pain["source"]["label"] and pain["source"]["url"].startswith("https://www.cms.gov/")
    assert "LCD L39240" in pain["detail"] and "Question for the author" in pain["detail"]
    assert pain["overrideReasons"] and all(o["display"] and o["code"] for o in pain["overrideReasons"])
    assert pain["selectionBehavior"] == "at-most-one"
    (suggestion,) = pain["suggestions"]
    (action,) = suggestion["actions"]
    assert action["type"] == "create" and action["resource"]["resourceType"] == "Task"
    assert "pain score" in action["resource"]["description"]
    assert action["resource"]["focus"] == {"reference": "DocumentReference/draft-42"}
    assert action["resource"]["for"] == {"reference": "Patient/p-789"}
    # Same hookInstance again: the same uuids (feedback keeps pointing at the right card).
    again = cards_of(hook(server, "procedure-note-sign", custom_request(doc_ref(INCOMPLETE), hi)))
    assert [c["uuid"] for c in again] == [c["uuid"] for c in cards]
    other = cards_of(hook(server, "procedure-note-sign", custom_request(doc_ref(INCOMPLETE))))
    assert not {c["uuid"] for c in other} & {c["uuid"] for c in cards}


def test_order_sign_with_the_note_in_prefetch(server):
    hi = str(uuid.uuid4())
    direct = cards_of(hook(server, "epidural-note-check", order_sign_request(doc_ref(INCOMPLETE), hi)))
    # A prefetch query answers with a searchset Bundle; the draftOrders Bundle in context is not a note.
    searched = cards_of(hook(server, "epidural-note-check", order_sign_request(searchset(doc_ref(INCOMPLETE)), hi)))
    assert direct == searched
    assert {c["source"]["topic"]["code"] for c in direct} == {"pain_score_post", "consent", "code"}


def test_document_reference_in_prefetch_of_the_custom_hook(server):
    body = custom_request(None) | {"prefetch": {"note": doc_ref(INCOMPLETE)}}
    assert {c["indicator"] for c in cards_of(hook(server, "procedure-note-sign", body))} == {"critical", "warning", "info"}


def test_composition_document_bundle(server):
    sections = INCOMPLETE.split("\n\n")
    composition = {"resourceType": "Composition", "id": "comp-1", "status": "preliminary",
                   "type": {"coding": [{"system": "http://loinc.org", "code": "28570-0"}]},
                   "title": "Procedure note", "date": "2026-01-01", "author": [{"reference": "Practitioner/123"}],
                   "section": [{"text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">'
                               + "".join(f"<p>{_xml_escape(line)}</p>" for line in part.splitlines()) + "</div>"}}
                               for part in sections]}
    bundle = {"resourceType": "Bundle", "type": "document", "entry": [{"resource": composition}]}
    cards = cards_of(hook(server, "procedure-note-sign", custom_request(bundle)))
    rules = {c["source"]["topic"]["code"] for c in cards}
    assert "pain_score_post" in rules and "code" in rules
    assert "62323" in next(c for c in cards if c["indicator"] == "info")["summary"]


def test_a_complete_note_gets_no_cards(server):
    r = hook(server, "procedure-note-sign", custom_request(doc_ref(COMPLETE)))
    assert r.status_code == 200 and r.json() == {"cards": []}


def test_an_out_of_family_note_gets_one_critical_card(server):
    cards = cards_of(hook(server, "procedure-note-sign", custom_request(doc_ref(TRANSFORAMINAL))))
    assert cards[0]["indicator"] == "critical"
    assert "transforaminal" in cards[0]["summary"] and "64479" in cards[0]["summary"]
    assert "\u201ctransforaminal\u201d" in cards[0]["detail"]
    assert not any(c["indicator"] == "info" for c in cards)


# ---------------------------------------------------------------- feedback

def test_feedback_is_accepted_and_stored_without_note_text(server):
    hi = str(uuid.uuid4())
    cards = cards_of(hook(server, "procedure-note-sign", custom_request(doc_ref(INCOMPLETE), hi)))
    pain = next(c for c in cards if c["source"]["topic"]["code"] == "pain_score_post")
    consent = next(c for c in cards if c["source"]["topic"]["code"] == "consent")
    reason = consent["overrideReasons"][0]
    feedback = {"feedback": [
        {"card": pain["uuid"], "outcome": "accepted",
         "acceptedSuggestions": [{"id": pain["suggestions"][0]["uuid"]}], "outcomeTimestamp": "2026-01-01T10:00:00Z"},
        {"card": consent["uuid"], "outcome": "overridden",
         "overrideReason": {"reason": {k: reason[k] for k in ("system", "code", "display")},
                            "userComment": "consent form on file"},
         "outcomeTimestamp": "2026-01-01T10:00:05Z"}]}
    r = server.client.post("/cds-services/procedure-note-sign/feedback", json=feedback)
    assert r.status_code == 200, r.text
    assert r.json() == {"stored": 2}
    with sqlite3.connect(server.feedback_db) as db:  # the real file, as another process would read it
        tables = [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        dump = "\n".join(str(row) for t in tables for row in db.execute(f'SELECT * FROM "{t}"'))
    assert pain["uuid"] in dump and consent["uuid"] in dump and "overridden" in dump and reason["code"] in dump
    assert MARKER not in dump and "L4-5" not in dump

    bad = server.client.post("/cds-services/procedure-note-sign/feedback",
                             json={"feedback": [{"card": pain["uuid"], "outcome": "maybe"}]})
    assert bad.status_code == 400 and bad.json()["error"] == "invalid feedback"


# ---------------------------------------------------------------- /v1/check

def test_v1_check_text_and_json(server):
    r = server.client.post("/v1/check", content=INCOMPLETE.encode(), headers={"content-type": "text/plain"})
    assert r.status_code == 200
    result = NoteResult.model_validate(r.json())   # the core output contract
    assert result.status == "ok" and result.code.cpt == "62323" and result.note_id == "note"
    missing = {f.id for f in result.findings if f.status == "missing"}
    assert missing == {"pain_score_post", "consent"}
    for spans in result.record.evidence.values():
        for ev in spans:
            assert INCOMPLETE[ev.start:ev.end] == ev.text
    as_json = server.client.post("/v1/check", json={"note_id": "n-7", "text": INCOMPLETE})
    assert as_json.status_code == 200
    assert as_json.json() | {"note_id": "note"} == r.json()
    assert as_json.json()["note_id"] == "n-7"


def test_v1_check_format_fhir(server):
    r = server.client.post("/v1/check?format=fhir", json={"note_id": "n-8", "text": INCOMPLETE})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/fhir+json")
    bundle = r.json()
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "collection"
    issues = [e["resource"] for e in bundle["entry"]]
    assert all(i["resourceType"] == "DetectedIssue" for i in issues)
    codes = {c["code"] for i in issues for c in i["code"]["coding"]}
    assert {"pain_score_post", "consent"} <= codes
    bad = server.client.post("/v1/check?format=fhir", json={"note_id": "n-9", "text": NOT_EPIDURAL})
    assert bad.status_code == 422 and bad.json()["resourceType"] == "OperationOutcome"
    assert "n-9" in bad.json()["issue"][0]["diagnostics"]


# ---------------------------------------------------------------- bad input

def _bad_cases():
    pdf = {"contentType": "application/pdf", "data": b64("%PDF-1.4 not text")}
    return [
        ("malformed JSON", "/cds-services/procedure-note-sign", b'{"hook": "order-sign",', "application/json", 400),
        ("JSON array", "/cds-services/procedure-note-sign", b"[1, 2]", "application/json", 400),
        ("no hookInstance", "/cds-services/procedure-note-sign",
         {k: v for k, v in custom_request(doc_ref(INCOMPLETE)).items() if k != "hookInstance"}, None, 400),
        ("wrong hook", "/cds-services/epidural-note-check", custom_request(doc_ref(INCOMPLETE)), None, 400),
        ("unknown service", "/cds-services/no-such-service", custom_request(doc_ref(INCOMPLETE)), None, 404),
        ("unknown service feedback", "/cds-services/no-such-service/feedback",
         {"feedback": [{"card": str(uuid.uuid4()), "outcome": "accepted"}]}, None, 404),
        ("no note anywhere", "/cds-services/epidural-note-check", order_sign_request(None), None, 412),
        ("no content", "/cds-services/procedure-note-sign",
         custom_request({**doc_ref(INCOMPLETE), "content": []}), None, 422),
        ("pdf attachment", "/cds-services/procedure-note-sign", custom_request(doc_ref(attachment=pdf)), None, 422),
        ("bad base64", "/cds-services/procedure-note-sign",
         custom_request(doc_ref(attachment={"contentType": "text/plain", "data": "@@not base64!!"})), None, 422),
        ("url only", "/cds-services/procedure-note-sign",
         custom_request(doc_ref(attachment={"contentType": "text/plain", "url": "Binary/1"})), None, 422),
        ("Spanish note", "/cds-services/procedure-note-sign", custom_request(doc_ref(SPANISH)), None, 422),
        ("not an epidural note", "/cds-services/procedure-note-sign", custom_request(doc_ref(NOT_EPIDURAL)), None, 422),
        ("empty Composition", "/cds-services/procedure-note-sign",
         custom_request({"resourceType": "Composition", "id": "c-0", "section": []}), None, 422),
        ("check: empty text", "/v1/check", {"note_id": "e-1", "text": "   "}, None, 422),
        ("check: no text field", "/v1/check", {"note_id": "e-2"}, None, 400),
        ("check: binary body", "/v1/check", b"\x00\x01\x02PK\x03\x04" * 20, "text/plain", 422),
        ("check: Spanish", "/v1/check", SPANISH.encode(), "text/plain", 422),
        ("check: pdf body", "/v1/check", b"%PDF-1.4", "application/pdf", 415),
        ("check: bad format", "/v1/check?format=xml", INCOMPLETE.encode(), "text/plain", 400),
        ("not a route", "/v2/nothing", b"{}", "application/json", 404),
    ]


@pytest.mark.parametrize("name,path,body,content_type,status", _bad_cases(), ids=[c[0] for c in _bad_cases()])
def test_bad_input_gets_its_status_and_a_clear_json_error(server, name, path, body, content_type, status):
    if isinstance(body, bytes):
        r = server.client.post(path, content=body, headers={"content-type": content_type})
    else:
        r = server.client.post(path, json=body)
    assert r.status_code == status, r.text
    err = r.json()
    assert set(err) == {"error", "detail"} and err["error"] and err["detail"]
    assert MARKER not in r.text   # errors name ids, never quote the note


def test_oversized_bodies_get_413_and_the_server_keeps_serving(server):
    big = b"x" * 10_000_000   # declared in Content-Length: refused before the body is read
    r = _raw_post(server, "/cds-services/procedure-note-sign", big, declared=len(big))
    assert r.startswith(b"HTTP/1.1 413")
    assert b"request body too large" in r
    # Chunked (no Content-Length): counted as it streams.
    over = 1_048_576 + 10
    chunks = (b"y" * min(65536, over - i) for i in range(0, over, 65536))
    r2 = server.client.post("/v1/check", content=chunks, headers={"content-type": "text/plain"})
    assert r2.status_code == 413 and r2.json()["error"] == "request body too large"
    assert server.client.get("/healthz").json()["status"] == "ok"
    assert cards_of(hook(server, "procedure-note-sign", custom_request(doc_ref(INCOMPLETE))))


def _raw_post(server: Server, path: str, body: bytes, declared: int) -> bytes:
    """A raw socket, because an HTTP client may fail writing a body the server has already refused."""
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {server.token(path)}\r\nContent-Length: {declared}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(head + body[:65536])
        s.settimeout(10)
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    return reply


# ---------------------------------------------------------------- authentication

def test_authentication_through_the_server(server):
    path = "/cds-services/procedure-note-sign"
    body = custom_request(doc_ref(COMPLETE))
    with httpx.Client(base_url=server.base, timeout=10) as raw:
        def post(token: str | None):
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            return raw.post(path, json=body, headers=headers)

        missing = post(None)
        assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer")
        assert missing.json()["error"] == "unauthorized"
        assert post(server.token("/cds-services/epidural-note-check")).status_code == 401   # aud of another URL
        assert post(server.token(path, iss="https://intruder.example")).status_code == 401
        assert post(server.token(path, exp=int(time.time()) - 3600)).status_code == 401
        assert post(server.token(path, jti=None)).status_code == 401
        hs = jwt.encode({"iss": ISSUER, "aud": server.base + path, "exp": int(time.time()) + 60,
                         "iat": int(time.time()), "jti": "x"}, "secret" * 6, algorithm="HS256",
                        headers={"kid": KID})
        assert post(hs).status_code == 401
        good = server.token(path)
        assert post(good).status_code == 200
        replay = post(good)
        assert replay.status_code == 401 and "jti" in replay.json()["detail"]
        # Authentication comes before parsing: a malformed body without a token is a 401, not a 400.
        assert raw.post(path, content=b"{", headers={"content-type": "application/json"}).status_code == 401
        assert raw.post("/v1/check", content=b"text").status_code == 401


def test_serve_refuses_a_public_host_without_authentication():
    r = subprocess.run([sys.executable, "-m", "notecheck", "serve", "--host", "0.0.0.0", "--port", "1"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "refusing to bind 0.0.0.0 without authentication" in r.stderr


def test_serve_without_issuers_says_it_is_loopback_only(monkeypatch, capsys, tmp_path):
    from notecheck.cli import main
    from notecheck.service import server as service_server

    calls = []
    monkeypatch.setattr(service_server, "serve", lambda host, port, workers: calls.append((host, port, workers)))
    monkeypatch.setattr(os, "environ", dict(os.environ))
    assert main(["serve", "--port", "18999", "--feedback-db", str(tmp_path / "f.sqlite")]) == 0
    err = capsys.readouterr().err
    assert "authentication OFF" in err and "loopback 127.0.0.1 only" in err
    (host, port, _), = calls
    assert (host, port) == ("127.0.0.1", 18999)
    assert os.environ["NOTECHECK_SERVICE_BASE_URL"] == "http://127.0.0.1:18999"
    assert "NOTECHECK_SERVICE_TRUSTED_ISSUERS" not in os.environ


def test_a_check_over_the_time_limit_is_a_503(tmp_path):
    """The one in-process test (httpx's ASGI transport, a stand-in engine that hangs): a real note never
    takes 5 s, so the time limit cannot be reached through the real server."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from notecheck.service.app import ServiceSettings, create_app

    class Hanging:
        def check(self, text, note_id="note", billed=None):
            time.sleep(1.0)

    app = create_app(ServiceSettings(feedback_db=tmp_path / "f.sqlite", request_timeout_s=0.1))
    state = app.state.notecheck
    state.checker, state.executor = Hanging(), ThreadPoolExecutor(max_workers=1)

    async def call():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as c:
            return await c.post("/v1/check", json={"note_id": "slow-1", "text": INCOMPLETE})

    r = asyncio.run(call())
    state.executor.shutdown(wait=True)
    assert r.status_code == 503 and r.json() == {"error": "check timed out",
                                                 "detail": "note slow-1: not checked within 0.1 s"}


# ---------------------------------------------------------------- logs (keep last: it reads what came before)

def test_no_note_text_or_traceback_in_the_server_logs(server):
    for note in (INCOMPLETE, SPANISH, NOT_EPIDURAL, TRANSFORAMINAL):
        hook(server, "procedure-note-sign", custom_request(doc_ref(note)))
        server.client.post("/v1/check", content=note.encode(), headers={"content-type": "text/plain"})
    time.sleep(0.2)
    logs = server.logs()
    assert "POST /cds-services/procedure-note-sign" in logs   # the access log is there...
    assert MARKER not in logs                                  # ...but no note text
    assert "L4-5 interlaminar" not in logs and "Traceback" not in logs


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def test_keep_alive_requests_are_not_held_back_by_delayed_acks(server):
    """With --workers 2 the shared socket must be an IPPROTO_TCP socket so that TCP_NODELAY is set: otherwise
    each keep-alive request after the first waits ~40 ms for a delayed ACK (notecheck/service/server.py)."""
    import statistics

    times = []
    for _ in range(15):
        started = time.perf_counter()
        assert server.client.get("/cds-services").status_code == 200
        times.append(time.perf_counter() - started)
    assert statistics.median(times) < 0.03, f"median {statistics.median(times) * 1000:.1f} ms"


# ---------------------------------------------------------------- claims: billed codes with the note


def test_order_sign_compares_the_ordered_cpt_code_with_the_note(server):
    body = order_sign_request(doc_ref(INCOMPLETE))
    body["context"]["draftOrders"]["entry"][0]["resource"]["code"]["coding"][0]["code"] = "62321"
    cards = cards_of(hook(server, "epidural-note-check", body))
    mismatch = [c for c in cards if c["source"]["topic"]["code"] == "billed_code_mismatch"]
    assert len(mismatch) == 1 and mismatch[0]["indicator"] == "critical"
    assert "62321" in mismatch[0]["detail"] and "62323" in mismatch[0]["detail"]


def test_v1_check_takes_the_billed_claim(server):
    r = server.client.post("/v1/check", json={"note_id": "n-8", "text": INCOMPLETE, "billed": "62323-50, 77003"})
    assert r.status_code == 200
    result = NoteResult.model_validate(r.json())
    assert result.claim.billed == "62323-50, 77003" and result.claim.status == "supported"
    failed = {f.id for f in result.findings if f.status == "missing" and f.kind == "coding"}
    assert failed == {"no_bilateral_modifier", "no_separate_imaging_code"}
    plain = server.client.post("/v1/check?billed=62323-KX", content=INCOMPLETE.encode(),
                               headers={"content-type": "text/plain"})
    assert {f["id"] for f in plain.json()["findings"] if f["status"] == "missing" and f["kind"] == "coding"} == {
        "kx_only_for_snrb"}
