"""Helpers for the service tests: sample notes carrying a marker, FHIR/CDS Hooks request builders, and a real
`python -m notecheck serve` on a free loopback port with trusted-issuer authentication (an ES384 key made
here, its JWKS in a file) and an httpx client that mints a fresh bearer JWT per request.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import jwt
import yaml
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "corpora" / "sample"
MARKER = "QUOKKAZEBRA"
ISSUER = "https://ehr.example.org"
KID = "test-key-1"
CATALOG = yaml.safe_load((REPO / "patterns" / "cds_services.yaml").read_text(encoding="utf-8"))
NAMESPACE = uuid.UUID(CATALOG["cards"]["uuid_namespace"])
CUSTOM_HOOK = "org.notecheck.procedure-note-sign"


def sample(name: str) -> str:
    # The marker sits on its own last line, where it changes no finding.
    return (SAMPLES / name).read_text(encoding="utf-8") + f"\nTranscribed by {MARKER}.\n"


INCOMPLETE = sample("11_lumbar_ilesi_missing_consent_postpain.txt")   # misses consent (warning), post pain (error)
COMPLETE = sample("01_lumbar_ilesi_fluoro_complete.txt")
TRANSFORAMINAL = sample("10_transforaminal_l5s1.txt")
SPANISH = (f"El paciente {MARKER} recibió una inyección epidural lumbar L4-L5 bajo fluoroscopia. Se obtuvo el "
           "consentimiento informado. Dolor previo 7/10, después 2/10. No hubo complicaciones y el paciente "
           "fue dado de alta en buenas condiciones.")
NOT_EPIDURAL = f"Patient {MARKER} seen for a sore throat. Rapid strep test negative. Fluids and rest.\n"


def b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def doc_ref(text: str | None = None, *, rid: str = "draft-42", attachment: dict | None = None) -> dict:
    att = attachment if attachment is not None else {"contentType": "text/plain; charset=utf-8", "data": b64(text)}
    return {"resourceType": "DocumentReference", "id": rid, "status": "current", "docStatus": "preliminary",
            "type": {"coding": [{"system": "http://loinc.org", "code": "28570-0", "display": "Procedure note"}]},
            "subject": {"reference": "Patient/p-789"}, "content": [{"attachment": att}]}


def custom_request(note: dict | None, hook_instance: str | None = None, **extra) -> dict:
    context = {"userId": "Practitioner/123", "patientId": "p-789", "encounterId": "e-456"}
    if note is not None:
        context["draftNote"] = note
    return {"hook": CUSTOM_HOOK, "hookInstance": hook_instance or str(uuid.uuid4()),
            "fhirServer": "https://ehr.example.org/fhir", "context": context, **extra}


def order_sign_request(prefetch_note: dict | None, hook_instance: str | None = None) -> dict:
    orders = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {
        "resourceType": "ServiceRequest", "id": "sr-1", "status": "draft", "intent": "order",
        "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "62323"}]},
        "subject": {"reference": "Patient/p-789"}}}]}
    return {"hook": "order-sign", "hookInstance": hook_instance or str(uuid.uuid4()),
            "context": {"userId": "Practitioner/123", "patientId": "p-789", "encounterId": "e-456",
                        "draftOrders": orders},
            "prefetch": {"note": prefetch_note}}


def searchset(resource: dict) -> dict:
    return {"resourceType": "Bundle", "type": "searchset", "total": 1,
            "entry": [{"fullUrl": f"https://ehr.example.org/fhir/{resource['resourceType']}/{resource['id']}",
                       "resource": resource, "search": {"mode": "match"}}]}


# ---------------------------------------------------------------- the server

class Bearer(httpx.Auth):
    """A fresh ES384 token per request, for exactly the URL called (CDS Hooks: aud = the service URL)."""

    def __init__(self, server: Server) -> None:
        self.server = server

    def auth_flow(self, request):
        request.headers["Authorization"] = f"Bearer {self.server.token(request.url.path)}"
        yield request


class Server:
    def __init__(self, tmp: Path, workers: int = 2) -> None:
        self.key = ec.generate_private_key(ec.SECP384R1())
        jwk = ECAlgorithm.to_jwk(self.key.public_key(), as_dict=True) | {"kid": KID, "alg": "ES384", "use": "sig"}
        (tmp / "jwks.json").write_text(json.dumps({"keys": [jwk]}), encoding="utf-8")
        # A relative JWKS path: resolved against the issuers file's folder.
        (tmp / "issuers.yaml").write_text(f"{ISSUER}: jwks.json\n", encoding="utf-8")
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.feedback_db = tmp / "feedback.sqlite"
        self.out_path, self.err_path = tmp / "server.out", tmp / "server.err"
        self._out, self._err = self.out_path.open("wb"), self.err_path.open("wb")
        started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "notecheck", "serve", "--port", str(self.port), "--trusted-issuers",
             str(tmp / "issuers.yaml"), "--feedback-db", str(self.feedback_db), "--workers", str(workers)],
            stdout=self._out, stderr=self._err, cwd=tmp, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.client = httpx.Client(base_url=self.base, auth=Bearer(self), timeout=10)
        self.startup_s = self._wait_for_first_answer(started)

    def token(self, path: str, **overrides) -> str:
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": self.base + path, "exp": now + 300, "iat": now, "jti": str(uuid.uuid4()),
                  "sub": "client-1"} | overrides
        return jwt.encode({k: v for k, v in claims.items() if v is not None}, self.key, algorithm="ES384",
                          headers={"kid": KID, "typ": "JWT"})

    def _wait_for_first_answer(self, started: float) -> float:
        while time.monotonic() - started < 30:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.err_path.read_text()[-2000:]}")
            try:
                r = self.client.post("/v1/check", content=COMPLETE, headers={"content-type": "text/plain"})
                if r.status_code == 200:
                    return time.monotonic() - started
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError("server gave no answer within 30 s")

    def logs(self) -> str:
        self._out.flush()
        self._err.flush()
        return self.out_path.read_text(errors="replace") + self.err_path.read_text(errors="replace")

    def stop(self) -> None:
        self.client.close()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self._out.close()
        self._err.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
