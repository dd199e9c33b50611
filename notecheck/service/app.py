"""The FastAPI app: CDS Hooks 2.0 discovery, service and feedback routes, plus a plain REST `/v1/check`.

A thin layer over the same engine as `notecheck check`: each worker process builds one NoteChecker in the
lifespan (before it accepts requests) and runs checks on one dedicated thread, so the event loop keeps
answering (health checks, timeouts) while a note is checked and spaCy is never used from two threads.

Run: `notecheck serve` (notecheck/cli.py), or `uvicorn --factory notecheck.service.app:create_app` with
settings from NOTECHECK_SERVICE_* environment variables (ServiceSettings.from_env).

Errors are JSON `{"error", "detail"}` naming the hookInstance or note id, never note text:
400 malformed JSON / not a valid request / wrong hook, 401 bad token, 404 unknown service, 412 no note in
context or prefetch, 413 body or note too large, 415 /v1/check body neither text nor JSON, 422 a note that
cannot be read or checked, 503 a check over the time limit. With `?format=fhir` /v1/check answers errors as
a FHIR OperationOutcome instead.
"""

from __future__ import annotations

import asyncio
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..patterns_path import load_yaml, patterns_dir
from ..reading import decode_note
from ..record import NoteResult
from .cards import CardRules, CdsResponse, HookFacts, build_cards
from .guard import Guard
from .hooks import FeedbackRequest, HookRequest, NoteProblem, find_note, ordered_codes
from .language import not_english_reason

log = logging.getLogger("uvicorn.error.notecheck")

ENV_PREFIX = "NOTECHECK_SERVICE_"
FHIR_JSON = "application/fhir+json"
# A synthetic note (no patient) checked once at start-up so the first real request is not the slow one.
_WARM_UP_NOTE = ("PROCEDURE: L4-L5 interlaminar epidural steroid injection under fluoroscopic guidance.\n"
                 "Consent obtained. Pain 7/10 before, 2/10 after. 80 mg methylprednisolone in 4 mL.\n")


@dataclass
class ServiceSettings:
    """How one service instance runs. `trusted_issuers` empty = no authentication (loopback only: the CLI
    refuses any other host). `base_url` is the public URL clients call: JWT `aud` = base_url + path."""

    base_url: str = "http://127.0.0.1:8080"
    trusted_issuers: dict[str, str] = field(default_factory=dict)
    feedback_db: Path = Path("notecheck-feedback.sqlite")
    max_body_bytes: int = 1_048_576
    request_timeout_s: float = 5.0
    patterns_dir: Path | None = None
    profile: str | None = None          # payer profile id or file (default Medicare)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> ServiceSettings:
        env = os.environ if environ is None else environ
        get = lambda name: env.get(ENV_PREFIX + name) or None  # noqa: E731
        settings = cls()
        if get("BASE_URL"):
            settings.base_url = get("BASE_URL")
        if get("TRUSTED_ISSUERS"):
            settings.trusted_issuers = load_trusted_issuers(Path(get("TRUSTED_ISSUERS")))
        if get("FEEDBACK_DB"):
            settings.feedback_db = Path(get("FEEDBACK_DB"))
        if get("PATTERNS_DIR"):
            settings.patterns_dir = Path(get("PATTERNS_DIR"))
        if get("PROFILE"):
            settings.profile = get("PROFILE")
        try:
            if get("MAX_BODY_BYTES"):
                settings.max_body_bytes = int(get("MAX_BODY_BYTES"))
            if get("REQUEST_TIMEOUT_S"):
                settings.request_timeout_s = float(get("REQUEST_TIMEOUT_S"))
        except ValueError:
            raise ValueError(f"{ENV_PREFIX}MAX_BODY_BYTES must be an integer and {ENV_PREFIX}REQUEST_TIMEOUT_S "
                             "a number of seconds") from None
        return settings

    def to_env(self) -> dict[str, str]:
        """The environment that makes `from_env` rebuild these settings in uvicorn's worker processes
        (trusted issuers travel as the file they came from: see notecheck.cli)."""
        env = {"BASE_URL": self.base_url, "FEEDBACK_DB": str(self.feedback_db),
               "MAX_BODY_BYTES": str(self.max_body_bytes), "REQUEST_TIMEOUT_S": str(self.request_timeout_s)}
        if self.patterns_dir:
            env["PATTERNS_DIR"] = str(self.patterns_dir)
        if self.profile:
            env["PROFILE"] = self.profile
        return {ENV_PREFIX + k: v for k, v in env.items()}


def load_trusted_issuers(path: Path) -> dict[str, str]:
    """A YAML or JSON mapping iss -> JWKS file or http(s) URL; relative files are relative to `path`."""
    try:
        data = load_yaml(path.resolve())  # YAML is a superset of JSON
    except OSError as exc:
        raise ValueError(f"trusted issuers file {path}: {exc.strerror or type(exc).__name__}") from None
    except Exception:  # noqa: BLE001 - a YAML syntax error: say which file
        raise ValueError(f"trusted issuers file {path}: not valid YAML or JSON") from None
    if not isinstance(data, dict) or not data or not all(isinstance(k, str) and isinstance(v, str)
                                                         for k, v in data.items()):
        raise ValueError(f"trusted issuers file {path}: expected a non-empty mapping of issuer -> JWKS file or URL")
    return {iss: src if "://" in src or Path(src).is_absolute() else str(path.resolve().parent / src)
            for iss, src in data.items()}


class ErrorBody(BaseModel):
    error: str
    detail: str


class CheckRequest(BaseModel):
    note_id: str | None = Field(default=None, min_length=1, max_length=200)
    text: str
    billed: str | None = Field(default=None, max_length=500,
                               description='billed codes and modifiers to compare, e.g. "62323" or "99213-25, 62323"')


class ServiceDefinition(BaseModel):
    id: str
    hook: str
    title: str | None = None
    description: str
    prefetch: dict[str, str] | None = None
    usageRequirements: str | None = None  # noqa: N815 - CDS Hooks field name


class Discovery(BaseModel):
    services: list[ServiceDefinition]


class ApiError(Exception):
    def __init__(self, status: int, error: str, detail: str, *, fhir: bool = False) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail, self.fhir = status, error, detail, fhir


_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": what} for code, what in {
        400: "malformed JSON, not a valid request, or the hook does not match the service",
        401: "bearer JWT missing or invalid (only when trusted issuers are configured)",
        404: "unknown service", 412: "the note is in neither context nor prefetch",
        413: "request body or note over the size limit",
        415: "/v1/check body neither text/plain nor JSON",
        422: "the note cannot be read (no text attachment, bad base64, not English, not an epidural note)",
        503: "the check did not finish within the time limit"}.items()}


_FHIR_OBJECT = {"type": "object", "required": ["resourceType"], "properties": {"resourceType": {"type": "string"}}}
# /v1/check answers application/json (the output contract, or {error, detail}) or, with ?format=fhir,
# application/fhir+json (a DetectedIssue Bundle, or an OperationOutcome).
_CHECK_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "the output contract (NoteResult); with ?format=fhir a FHIR Bundle of DetectedIssue",
          "content": {FHIR_JSON: {"schema": _FHIR_OBJECT}}},
    **{code: {**_ERRORS[code], "content": {FHIR_JSON: {"schema": _FHIR_OBJECT}}}
       for code in (400, 401, 413, 415, 422, 503)}}


@dataclass
class _State:
    settings: ServiceSettings
    services: dict[str, ServiceDefinition]
    note_keys: dict[str, list[str]]
    card_rules: CardRules
    checker: Any = None
    executor: ThreadPoolExecutor | None = None
    store: Any = None
    authenticator: Any = None


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    settings = settings or ServiceSettings.from_env()
    folder = settings.patterns_dir or patterns_dir()
    catalog = load_yaml((folder / "cds_services.yaml").resolve())
    state = _State(settings=settings,
                   services={s["id"]: ServiceDefinition(**s) for s in catalog["services"]},
                   note_keys=catalog["note_keys"], card_rules=CardRules.from_yaml(catalog["cards"]))
    if settings.trusted_issuers:
        from .security import Authenticator  # built here so a bad issuer map fails at start-up, not per request

        state.authenticator = Authenticator(settings.trusted_issuers)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        from ..engine import NoteChecker
        from .feedback import FeedbackStore

        state.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="notecheck-check")
        loop = asyncio.get_running_loop()
        state.checker = await loop.run_in_executor(state.executor, NoteChecker, folder, settings.profile)
        await loop.run_in_executor(state.executor, state.checker.check, _WARM_UP_NOTE, "warm-up")
        state.store = FeedbackStore(settings.feedback_db)
        log.info("notecheck service ready: %d services, authentication %s", len(state.services),
                 "on" if state.authenticator else "off")
        yield
        state.executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="notecheck", version=__version__, lifespan=lifespan,
                  description="CDS Hooks 2.0 service and REST API checking epidural injection procedure notes "
                  "(CPT 62320-62327) for documentation completeness.")
    app.state.notecheck = state
    _add_error_handlers(app)
    _add_routes(app, state)
    app.add_middleware(Guard, max_body_bytes=settings.max_body_bytes, base_url=settings.base_url,
                       authenticator=lambda: state.authenticator)
    return app


def _add_routes(app: FastAPI, state: _State) -> None:
    @app.get("/cds-services", response_model=Discovery, response_model_exclude_none=True, tags=["CDS Hooks"],
             responses={401: _ERRORS[401]})
    async def discovery() -> Discovery:
        return Discovery(services=list(state.services.values()))

    @app.post("/cds-services/{service_id}", response_model=CdsResponse, response_model_exclude_none=True,
              tags=["CDS Hooks"], responses={k: _ERRORS[k] for k in (400, 401, 404, 412, 413, 422, 503)})
    async def call_service(service_id: str, hook_request: HookRequest) -> CdsResponse:
        service = _service(state, service_id)
        if hook_request.hook != service.hook:
            raise ApiError(400, "wrong hook", f"hook {hook_request.hook[:80]!r} does not match service "
                           f"{service_id}, which answers {service.hook!r}")
        try:
            note = find_note(hook_request, state.note_keys, list(service.prefetch or {}),
                             state.settings.max_body_bytes)
        except NoteProblem as exc:
            raise ApiError(exc.status, exc.error, exc.detail) from None
        result = await _check(state, note.text, note.note_id, billed=ordered_codes(hook_request))
        context = hook_request.context
        facts = HookFacts(hook_instance=hook_request.hookInstance, note_reference=note.reference,
                          patient_id=_str_or_none(context.get("patientId")),
                          user_id=_str_or_none(context.get("userId")))
        cards = build_cards(result, facts, state.card_rules, state.checker.coding_rules.out_of_family)
        log.info("hook %s (%s): note %s from %s checked, %d cards", hook_request.hookInstance[:80], service_id,
                 note.note_id, note.where, len(cards))
        return CdsResponse(cards=cards)

    @app.post("/cds-services/{service_id}/feedback", tags=["CDS Hooks"],
              responses={k: _ERRORS[k] for k in (400, 401, 404, 413)})
    async def feedback(service_id: str, body: FeedbackRequest) -> dict[str, int]:
        _service(state, service_id)
        loop = asyncio.get_running_loop()
        try:  # SQLite may wait on another worker's write lock: not on the event loop
            stored = await loop.run_in_executor(None, state.store.add, service_id, body.feedback)
        except ValueError as exc:
            raise ApiError(400, "invalid feedback", str(exc)) from None
        return {"stored": stored}

    @app.post("/v1/check", tags=["REST"], response_model=NoteResult, responses=_CHECK_RESPONSES,
              openapi_extra={"requestBody": {"required": True, "content": {
                  "text/plain": {"schema": {"type": "string"}},
                  "application/json": {"schema": CheckRequest.model_json_schema()}}}})
    async def check(request: Request, format: Literal["json", "fhir"] = "json",  # noqa: A002
                    note_id: str = Query("note", min_length=1, max_length=200,
                                         description="note id for a text/plain body"),
                    billed: str | None = Query(None, max_length=500,
                                               description="billed codes and modifiers for a text/plain body")):
        fhir = format == "fhir"
        note_id, text, warnings, body_billed = _check_body(await request.body(), request.headers.get("content-type"),
                                                           note_id, fhir)
        result = await _check(state, text, note_id, fhir=fhir, billed=body_billed or billed)
        if warnings:
            result = result.model_copy(update={"warnings": [*warnings, *result.warnings]})
        if fhir:
            from .fhir import detected_issues_bundle

            return JSONResponse(detected_issues_bundle(result), media_type=FHIR_JSON)
        return JSONResponse(result.model_dump(mode="json"))

    @app.get("/healthz", tags=["REST"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok" if state.checker is not None else "starting", "version": __version__}


def _service(state: _State, service_id: str) -> ServiceDefinition:
    service = state.services.get(service_id)
    if service is None:
        raise ApiError(404, "unknown service", f"no CDS service {service_id[:80]!r}; "
                       f"GET /cds-services lists {', '.join(sorted(state.services))}")
    return service


def _check_body(body: bytes, content_type: str | None, note_id: str, fhir: bool) -> tuple[str, str, list[str], str | None]:
    mime = (content_type or "text/plain").split(";", 1)[0].strip().lower()
    if mime == "application/json" or mime.endswith("+json"):
        try:
            request = CheckRequest.model_validate_json(body)
        except ValidationError as exc:
            raise ApiError(400, *_describe(exc.errors(include_input=False)), fhir=fhir) from None
        note_id, billed = request.note_id or note_id, request.billed
        text, warnings = request.text, []
        if not text.strip():
            raise ApiError(422, "note cannot be read", f"note {note_id}: empty note", fhir=fhir)
    elif mime == "text/plain":
        decoded = decode_note(body, note_id)
        if decoded.error or decoded.text is None:
            raise ApiError(422, "note cannot be read", decoded.error or f"note {note_id}: no text", fhir=fhir)
        text, warnings, billed = decoded.text, decoded.warnings, None
    else:
        raise ApiError(415, "unsupported media type", f"send the note as text/plain or as JSON "
                       f"{{note_id, text}}, not {mime[:80]}", fhir=fhir)
    return note_id, text, warnings, billed


async def _check(state: _State, text: str, note_id: str, *, fhir: bool = False, billed: str | None = None) -> NoteResult:
    reason = not_english_reason(text)
    if reason:
        raise ApiError(422, "note cannot be checked", f"note {note_id}: {reason}", fhir=fhir)
    loop = asyncio.get_running_loop()
    try:
        result = await asyncio.wait_for(
            loop.run_in_executor(state.executor, state.checker.check, text, note_id, billed),
            state.settings.request_timeout_s)
    except TimeoutError:
        log.warning("note %s: check over %.1f s, answered 503", note_id, state.settings.request_timeout_s)
        raise ApiError(503, "check timed out", f"note {note_id}: not checked within "
                       f"{state.settings.request_timeout_s:g} s", fhir=fhir) from None
    if result.status != "ok":
        raise ApiError(422, "note cannot be checked", result.error or f"note {note_id}: not checked", fhir=fhir)
    return result


def _describe(errors: list[dict]) -> tuple[str, str]:
    """(error, detail) for pydantic errors; `include_input=False` upstream, so no note text is echoed."""
    if any(e.get("type") == "json_invalid" for e in errors):
        reason = next((str(e.get("ctx", {}).get("error", "")) for e in errors if e.get("type") == "json_invalid"), "")
        return "malformed JSON", f"the request body is not valid JSON ({reason[:120] or 'syntax error'})"
    parts = [f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body') or 'body'}: {e.get('msg', 'invalid')}"
             for e in errors[:5]]
    return "invalid request", "; ".join(parts)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError):
        # The detail names ids and places (hookInstance, note id, context.draftNote), never note text.
        log.info("%s %s: %d %s: %s", request.method, request.url.path, exc.status, exc.error, exc.detail)
        if exc.fhir:
            from .fhir import operation_outcome

            code = {400: "invalid", 413: "too-long", 415: "not-supported", 503: "timeout"}.get(exc.status, "processing")
            return JSONResponse(operation_outcome(f"{exc.error}: {exc.detail}", code=code), status_code=exc.status,
                                media_type=FHIR_JSON)
        return JSONResponse({"error": exc.error, "detail": exc.detail}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError):
        # FastAPI's own 422 is for the request's shape; here that is a 400 (422 means the note is unusable).
        errors = [{k: v for k, v in e.items() if k != "input"} for e in exc.errors()]
        error, detail = _describe(errors)
        return JSONResponse({"error": error, "detail": detail}, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        error = {404: "not found", 405: "method not allowed"}.get(exc.status_code, "request failed")
        return JSONResponse({"error": error, "detail": str(exc.detail)}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))


def _str_or_none(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


__all__ = ["ServiceSettings", "create_app", "load_trusted_issuers"]
