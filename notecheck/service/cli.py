"""`notecheck serve`: its options, the start-up checks (authentication or loopback only) and the launch."""

from __future__ import annotations

import argparse
import os
from typing import TextIO

from ..reading import MAX_NOTE_BYTES

EXIT_COMPLETE, EXIT_USAGE = 0, 2


def add_serve_parser(sub, positive_int, add_profile) -> None:
    sv = sub.add_parser(
        "serve", help="run the CDS Hooks 2.0 service and REST API (FastAPI + uvicorn)",
        description="Serve GET /cds-services, POST /cds-services/{id}, POST /cds-services/{id}/feedback, "
        "POST /v1/check and GET /healthz (OpenAPI at /docs). Without --trusted-issuers there is no "
        "authentication and only a loopback --host is allowed.")
    sv.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    sv.add_argument("--port", type=positive_int, default=8080, help="port (default: 8080)")
    sv.add_argument("--workers", type=positive_int, default=1,
                    help="worker processes, each building its own checker (default: 1)")
    sv.add_argument("--base-url", default=None, metavar="URL",
                    help="public base URL the EHR calls; JWT aud must be this + the path "
                    "(default: http://HOST:PORT)")
    sv.add_argument("--trusted-issuers", default=None, metavar="FILE",
                    help="YAML or JSON mapping each trusted JWT issuer (iss) to its JWKS file or URL; "
                    "turns authentication on")
    sv.add_argument("--feedback-db", default="notecheck-feedback.sqlite", metavar="PATH",
                    help="SQLite file for CDS Hooks feedback (default: ./notecheck-feedback.sqlite)")
    sv.add_argument("--max-body-bytes", type=positive_int, default=MAX_NOTE_BYTES, metavar="N",
                    help=f"reject request bodies over N bytes with 413 (default: {MAX_NOTE_BYTES})")
    sv.add_argument("--request-timeout", type=float, default=5.0, metavar="S",
                    help="answer 503 when checking a note takes longer than S seconds (default: 5)")
    add_profile(sv)


def run_serve(args: argparse.Namespace, err: TextIO) -> int:
    import ipaddress
    from pathlib import Path

    from .app import ENV_PREFIX, ServiceSettings, load_trusted_issuers

    try:
        loopback = args.host == "localhost" or ipaddress.ip_address(args.host).is_loopback
    except ValueError:
        loopback = False
    issuers: dict[str, str] = {}
    if args.trusted_issuers:
        try:
            issuers = load_trusted_issuers(Path(args.trusted_issuers))
            from .security import Authenticator

            Authenticator(issuers)  # fail here, with exit 2, rather than in every worker
        except ValueError as exc:
            print(f"notecheck: error: {exc}", file=err)
            return EXIT_USAGE
    elif not loopback:
        print(f"notecheck: error: refusing to bind {args.host} without authentication: notes are PHI. Use a "
              "loopback --host (127.0.0.1) or give --trusted-issuers FILE", file=err)
        return EXIT_USAGE
    if args.profile:
        from ..profiles import load_profile

        try:
            load_profile(args.profile)  # a bad profile stops here, not in every worker
        except ValueError as exc:
            print(f"notecheck: error: {exc}", file=err)
            return EXIT_USAGE
        args.profile = str(Path(args.profile).resolve()) if Path(args.profile).is_file() else args.profile
    if args.request_timeout <= 0:
        print("notecheck: error: --request-timeout must be positive", file=err)
        return EXIT_USAGE
    host_for_url = f"[{args.host}]" if ":" in args.host else args.host
    settings = ServiceSettings(base_url=args.base_url or f"http://{host_for_url}:{args.port}",
                               feedback_db=Path(args.feedback_db), max_body_bytes=args.max_body_bytes,
                               request_timeout_s=args.request_timeout, profile=args.profile)
    # uvicorn's workers are fresh processes that build the app from the environment (create_app factory).
    os.environ.update(settings.to_env())
    if issuers:
        os.environ[ENV_PREFIX + "TRUSTED_ISSUERS"] = str(Path(args.trusted_issuers).resolve())
        print(f"notecheck serve: authentication on ({len(issuers)} trusted issuer(s)); JWT aud = "
              f"{settings.base_url}<path>", file=err)
    else:
        os.environ.pop(ENV_PREFIX + "TRUSTED_ISSUERS", None)
        print(f"notecheck serve: authentication OFF (no --trusted-issuers): bound to loopback {args.host} only",
              file=err)
    print(f"notecheck serve: http://{host_for_url}:{args.port}/cds-services, {args.workers} worker(s); "
          f"feedback in {args.feedback_db}", file=err, flush=True)
    from .server import serve

    serve(args.host, args.port, args.workers)
    return EXIT_COMPLETE
