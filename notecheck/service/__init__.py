"""notecheck as a service: CDS Hooks 2.0 and REST endpoints for checking a note at sign-off.

`create_app(ServiceSettings(...))` builds the FastAPI app (notecheck/service/app.py); `notecheck serve` runs it
under uvicorn. Modules: app (routes, settings, lifespan), guard (body limit + authentication), hooks (CDS Hooks
request models, finding the note), cards (NoteResult -> cards), language (English-only guard), security
(bearer JWTs), fhir (DetectedIssue / OperationOutcome), feedback (SQLite store).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .app import ServiceSettings, create_app

__all__ = ["ServiceSettings", "create_app"]


def __getattr__(name: str):
    # Lazy, so `notecheck.service.security` or `.fhir` can be imported without FastAPI and the engine.
    if name in __all__:
        from . import app

        return getattr(app, name)
    raise AttributeError(name)
