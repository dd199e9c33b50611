"""Bearer-JWT verification (notecheck.service.security) with real keys, real JWKS files and a real loopback
JWKS server; and, through a real uvicorn server, that the CDS routes answer 401 without a valid token."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from notecheck.service import security
from notecheck.service.security import AuthError, Authenticator

ISS = "https://ehr.example.org"
AUD = "https://notecheck.example.org/cds-services/procedure-note-sign"


# ---------------------------------------------------------------- keys, JWKS, tokens

@pytest.fixture(scope="module")
def keys():
    return {
        "rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "rsa-other": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ec384": ec.generate_private_key(ec.SECP384R1()),
        "ec256": ec.generate_private_key(ec.SECP256R1()),
    }


def jwk_of(private_key, kid: str, **extra) -> dict:
    algo = RSAAlgorithm if isinstance(private_key, rsa.RSAPrivateKey) else ECAlgorithm
    jwk = algo.to_jwk(private_key.public_key(), as_dict=True)
    jwk.update(kid=kid, use="sig", **extra)
    return jwk


@pytest.fixture(scope="module")
def jwks(keys) -> dict:
    return {"keys": [jwk_of(keys["rsa"], "rsa-1"), jwk_of(keys["ec384"], "ec-1"),
                     jwk_of(keys["ec256"], "ec256-1", alg="ES256")]}


@pytest.fixture
def jwks_file(tmp_path, jwks):
    path = tmp_path / "ehr-jwks.json"
    path.write_text(json.dumps(jwks))
    return path


@pytest.fixture
def auth(jwks_file):
    return Authenticator({ISS: str(jwks_file)})


def claims(**over) -> dict:
    now = int(time.time())
    c = {"iss": ISS, "aud": AUD, "exp": now + 300, "iat": now, "jti": str(uuid.uuid4())}
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}


def token(key, alg="RS384", kid="rsa-1", headers=None, **over) -> str:
    h = {"kid": kid, "typ": "JWT", **(headers or {})}
    return jwt.encode(claims(**over), key, algorithm=alg, headers=h)


def b64(obj) -> str:
    raw = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def rejected(auth: Authenticator, header: str | None, audience: str = AUD) -> AuthError:
    with pytest.raises(AuthError) as info:
        auth.verify(header, audience)
    assert info.value.status == 401
    return info.value


# ---------------------------------------------------------------- accepted

def test_rs384_token_is_accepted_and_claims_returned(auth, keys):
    got = auth.verify("Bearer " + token(keys["rsa"], "RS384", tenant="clinic-7"), AUD)
    assert got["iss"] == ISS and got["aud"] == AUD and got["tenant"] == "clinic-7"


def test_es384_token_is_accepted(auth, keys):
    assert auth.verify("Bearer " + token(keys["ec384"], "ES384", "ec-1"), AUD)["iss"] == ISS


def test_other_asymmetric_algorithms_and_aud_list_are_accepted(auth, keys):
    assert auth.verify("Bearer " + token(keys["rsa"], "PS256", aud=["https://x.example", AUD]), AUD)
    assert auth.verify("bearer " + token(keys["ec256"], "ES256", "ec256-1"), AUD)  # scheme is case-insensitive


def test_clock_skew_within_leeway_is_accepted(auth, keys):
    now = int(time.time())
    assert auth.verify("Bearer " + token(keys["rsa"], exp=now - 10, iat=now + 10), AUD)


# ---------------------------------------------------------------- the Authorization header

@pytest.mark.parametrize("header", [None, "", "   "])
def test_missing_header_is_401_with_bare_challenge(auth, header):
    err = rejected(auth, header)
    assert "missing Authorization header" in err.message
    assert err.www_authenticate == 'Bearer realm="notecheck"'


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Token abc.def.ghi", "JWT abc.def.ghi"])
def test_wrong_scheme_is_401(auth, header):
    err = rejected(auth, header)
    assert "Bearer scheme" in err.message and 'error="invalid_token"' in err.www_authenticate


@pytest.mark.parametrize("header", ["Bearer", "Bearer a.b.c extra"])
def test_bearer_without_exactly_one_token_is_401(auth, header):
    assert "single token" in rejected(auth, header).message


@pytest.mark.parametrize("tok", ["abc", "a.b", "a.b.c", "!!!.@@@.###", b64({"alg": "RS384"}) + ".%%%.c2ln",
                                 b64(b"not json") + "." + b64({"iss": ISS}) + ".c2ln",
                                 b64({"alg": "RS384", "kid": "rsa-1"}) + "." + b64([1, 2]) + ".c2ln",
                                 "a" * 20000 + ".b.c"])
def test_malformed_token_is_401(auth, tok):
    assert "not a well-formed JWT" in rejected(auth, "Bearer " + tok).message


# ---------------------------------------------------------------- algorithms and keys

def test_alg_none_is_refused(auth):
    tok = b64({"alg": "none", "kid": "rsa-1", "typ": "JWT"}) + "." + b64(claims()) + "."
    err = rejected(auth, "Bearer " + tok)
    assert "alg 'none' is not allowed" in err.message


def test_hs256_signed_with_the_public_key_as_secret_is_refused(auth, keys):
    # The classic key-confusion attack: the public key (which anyone can fetch) used as an HMAC secret.
    # Built by hand because PyJWT itself refuses to use a PEM key as an HMAC secret.
    pem = keys["rsa"].public_key().public_bytes(serialization.Encoding.PEM,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)
    signing_input = b64({"alg": "HS256", "kid": "rsa-1", "typ": "JWT"}) + "." + b64(claims())
    sig = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    err = rejected(auth, f"Bearer {signing_input}.{b64(sig)}")
    assert "alg 'HS256' is not allowed" in err.message


def test_hs256_with_any_secret_is_refused(auth):
    assert "HMAC" in rejected(auth, "Bearer " + token("a-shared-secret-of-32-bytes-or-more!", "HS256")).message


def test_unknown_kid_is_401(auth, keys):
    err = rejected(auth, "Bearer " + token(keys["rsa"], kid="rotated-away"))
    assert "no key with kid 'rotated-away'" in err.message


def test_missing_kid_is_401(auth, keys):
    tok = jwt.encode(claims(), keys["rsa"], algorithm="RS384")
    assert "no kid" in rejected(auth, "Bearer " + tok).message


def test_signature_by_another_key_is_401(auth, keys):
    err = rejected(auth, "Bearer " + token(keys["rsa-other"], "RS384", "rsa-1"))
    assert "signature does not verify" in err.message


def test_tampered_payload_is_401(auth, keys):
    h, _, s = token(keys["ec384"], "ES384", "ec-1").split(".")
    forged = f"{h}.{b64(claims(aud=AUD, tenant='someone-else'))}.{s}"
    assert "signature does not verify" in rejected(auth, "Bearer " + forged).message


def test_key_of_the_wrong_type_or_curve_is_refused(auth, keys):
    # An RS384 header naming the EC key, ES384 naming the P-256 key, ES384 naming a key published as ES256.
    assert "cannot verify a RS384" in rejected(auth, "Bearer " + token(keys["rsa"], "RS384", "ec-1")).message
    assert "cannot verify a ES384" in rejected(auth, "Bearer " + token(keys["ec384"], "ES384", "rsa-1")).message
    err = rejected(auth, "Bearer " + token(keys["ec384"], "ES384", "ec256-1"))
    assert "is for 'ES256'" in err.message


def test_short_rsa_key_is_refused(tmp_path):
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    path = tmp_path / "weak.json"
    path.write_text(json.dumps({"keys": [jwk_of(weak, "weak")]}))
    auth = Authenticator({ISS: str(path)})
    # PyJWT may itself refuse to sign with a short key; build the token's signature with cryptography.
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    signing_input = b64({"alg": "RS256", "kid": "weak"}) + "." + b64(claims())
    sig = weak.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    assert "1024-bit RSA key" in rejected(auth, f"Bearer {signing_input}.{b64(sig)}").message


def test_jku_other_than_the_configured_jwks_url_is_refused(auth, keys):
    tok = token(keys["rsa"], headers={"jku": "https://attacker.example/jwks.json"})
    assert "jku" in rejected(auth, "Bearer " + tok).message


# ---------------------------------------------------------------- claims

def test_untrusted_issuer_is_401(auth, keys):
    err = rejected(auth, "Bearer " + token(keys["rsa"], iss="https://evil.example"))
    assert "issuer 'https://evil.example' is not trusted" in err.message


def test_missing_iss_is_401(auth, keys):
    assert "no iss claim" in rejected(auth, "Bearer " + token(keys["rsa"], iss=None)).message


@pytest.mark.parametrize("aud", [AUD + "/", "https://notecheck.example.org/cds-services/order-sign",
                                 ["https://a.example", "https://b.example"]])
def test_wrong_audience_is_401(auth, keys, aud):
    err = rejected(auth, "Bearer " + token(keys["rsa"], aud=aud))
    assert "aud does not name this service URL" in err.message and AUD in err.message


def test_expired_token_is_401(auth, keys):
    now = int(time.time())
    err = rejected(auth, "Bearer " + token(keys["rsa"], exp=now - 120, iat=now - 420))
    assert "expired" in err.message


def test_iat_in_the_future_is_401(auth, keys):
    now = int(time.time())
    err = rejected(auth, "Bearer " + token(keys["rsa"], iat=now + 600, exp=now + 900))
    assert "iat is in the future" in err.message


def test_nbf_in_the_future_is_401(auth, keys):
    assert "not valid yet" in rejected(auth, "Bearer " + token(keys["rsa"], nbf=int(time.time()) + 600)).message


@pytest.mark.parametrize("claim", ["exp", "iat", "jti", "aud"])
def test_missing_required_claim_is_401(auth, keys, claim):
    err = rejected(auth, "Bearer " + token(keys["rsa"], **{claim: None}))
    assert f"no {claim} claim" in err.message


@pytest.mark.parametrize("over,words", [({"jti": ""}, "jti claim must be a non-empty string"),
                                        ({"jti": 12}, "jti claim must be a non-empty string"),
                                        ({"exp": "soon"}, "exp"), ({"iat": "now"}, "iat")])
def test_badly_typed_claims_are_401(auth, keys, over, words):
    assert words in rejected(auth, "Bearer " + token(keys["rsa"], **over)).message


@pytest.mark.parametrize("payload", [b'"exp": 1e400', b'"exp": Infinity', b'"iat": NaN', b'"nbf": -Infinity',
                                     b'"aud": {"a": 1}', b'"iss": ["x"]'])
def test_hostile_claim_values_are_401_not_a_crash(auth, keys, payload):
    # Properly signed, so the values reach the claim checks; JSON like 1e400 or NaN parses to inf / nan.
    now = int(time.time())
    raw = (f'{{"iss": "{ISS}", "aud": "{AUD}", "exp": {now + 300}, "iat": {now}, "jti": "{uuid.uuid4()}", '
           ).encode() + payload + b"}"
    tok = jwt.api_jws.encode(raw, keys["rsa"], algorithm="RS384", headers={"kid": "rsa-1"})
    rejected(auth, "Bearer " + tok)


@pytest.mark.parametrize("header", [{"alg": ["RS384"], "kid": "rsa-1"}, {"alg": "RS384", "kid": ["rsa-1"]},
                                    {"alg": "RS384", "kid": {"k": 1}}, {"alg": None}])
def test_hostile_header_values_are_401_not_a_crash(auth, header):
    rejected(auth, "Bearer " + b64(header) + "." + b64(claims()) + ".c2ln")


def test_replayed_jti_is_401(auth, keys):
    tok = token(keys["rsa"], jti="once-only")
    assert auth.verify("Bearer " + tok, AUD)
    assert "already used" in rejected(auth, "Bearer " + tok).message
    # A fresh signature with the same jti is the same replay.
    assert "already used" in rejected(auth, "Bearer " + token(keys["ec384"], "ES384", "ec-1", jti="once-only")).message


def test_rejected_token_does_not_burn_its_jti(auth, keys):
    # A token failing on aud must not let an attacker pre-empt the genuine call's jti.
    rejected(auth, "Bearer " + token(keys["rsa"], aud="https://other.example", jti="j-1"))
    assert auth.verify("Bearer " + token(keys["rsa"], jti="j-1"), AUD)


def test_jti_cache_is_bounded(jwks_file, keys):
    auth = Authenticator({ISS: str(jwks_file)}, jti_cache_size=3)
    for i in range(10):
        auth.verify("Bearer " + token(keys["rsa"], jti=f"j{i}"), AUD)
    assert len(auth._jti._seen) == 3
    assert "already used" in rejected(auth, "Bearer " + token(keys["rsa"], jti="j9")).message


def test_rejections_never_log_the_token(auth, keys, caplog):
    tok = token(keys["rsa"], aud="https://other.example")
    with caplog.at_level(logging.DEBUG, logger="notecheck.service.security"):
        rejected(auth, "Bearer " + tok)
    assert caplog.records and "aud does not name" in caplog.text
    assert tok not in caplog.text and tok.split(".")[2] not in caplog.text


# ---------------------------------------------------------------- JWKS files

def test_jwks_file_missing_is_401(tmp_path, keys):
    auth = Authenticator({ISS: str(tmp_path / "nope.json")})
    err = rejected(auth, "Bearer " + token(keys["rsa"]))
    assert "could not be loaded" in err.message and "does not exist" in err.message


@pytest.mark.parametrize("content,words", [("{not json", "is not JSON"), ('{"kid": 1}', "not a JWK Set"),
                                           ('{"keys": []}', "no usable"), ('{"keys": [{"kty": "RSA"}]}', "no usable"),
                                           ('{"keys": [{"kty": "oct", "kid": "rsa-1", "k": "c2VjcmV0"}]}',
                                            "no usable")])
def test_jwks_file_invalid_is_401(tmp_path, keys, content, words):
    path = tmp_path / "bad.json"
    path.write_text(content)
    err = rejected(Authenticator({ISS: str(path)}), "Bearer " + token(keys["rsa"]))
    assert words in err.message


def test_jwks_file_change_is_picked_up(tmp_path, keys):
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [jwk_of(keys["rsa"], "old")]}))
    auth = Authenticator({ISS: str(path)})
    assert auth.verify("Bearer " + token(keys["rsa"], kid="old"), AUD)
    path.write_text(json.dumps({"keys": [jwk_of(keys["ec384"], "new-ec-key")]}))
    assert auth.verify("Bearer " + token(keys["ec384"], "ES384", "new-ec-key"), AUD)
    assert "no key with kid 'old'" in rejected(auth, "Bearer " + token(keys["rsa"], kid="old")).message


def test_bad_configuration_is_refused_at_construction(jwks_file):
    with pytest.raises(ValueError):
        Authenticator({})
    with pytest.raises(ValueError, match="http"):
        Authenticator({ISS: "ftp://ehr.example/jwks.json"})


# ---------------------------------------------------------------- JWKS over loopback HTTP

class _JwksServer:
    """A tiny real HTTP server on 127.0.0.1 serving JWK Sets by path; counts the fetches."""

    def __init__(self):
        self.docs: dict[str, dict] = {}
        self.hits: dict[str, int] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                outer.hits[self.path] = outer.hits.get(self.path, 0) + 1
                doc = outer.docs.get(self.path)
                body = json.dumps(doc).encode() if doc is not None else b"not found"
                self.send_response(200 if doc is not None else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):  # keep test output quiet
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def jwks_server(jwks):
    server = _JwksServer()
    server.docs["/jwks.json"] = jwks
    yield server
    server.close()


def test_jwks_from_loopback_url_is_fetched_once_and_cached(jwks_server, keys):
    url = jwks_server.url + "/jwks.json"
    auth = Authenticator({ISS: url})
    before = jwks_server.hits.get("/jwks.json", 0)
    assert auth.verify("Bearer " + token(keys["rsa"], headers={"jku": url}), AUD)  # jku = the configured URL
    assert auth.verify("Bearer " + token(keys["ec384"], "ES384", "ec-1"), AUD)
    assert jwks_server.hits["/jwks.json"] == before + 1


def test_unknown_kid_refetches_a_rotated_url_jwks(jwks_server, keys, monkeypatch):
    monkeypatch.setattr(security, "JWKS_MIN_REFRESH_S", 0.0)
    jwks_server.docs["/rotating.json"] = {"keys": [jwk_of(keys["rsa"], "2024")]}
    auth = Authenticator({ISS: jwks_server.url + "/rotating.json"})
    assert auth.verify("Bearer " + token(keys["rsa"], kid="2024"), AUD)
    jwks_server.docs["/rotating.json"] = {"keys": [jwk_of(keys["ec384"], "2025")]}
    assert auth.verify("Bearer " + token(keys["ec384"], "ES384", "2025"), AUD)
    assert jwks_server.hits["/rotating.json"] == 2


def test_jwks_url_answering_404_is_401(jwks_server, keys):
    err = rejected(Authenticator({ISS: jwks_server.url + "/missing.json"}), "Bearer " + token(keys["rsa"]))
    assert "HTTP 404" in err.message


def test_jwks_url_refusing_connections_is_401(keys):
    with socket.socket() as s:  # a port that was free a moment ago and now has no listener
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    err = rejected(Authenticator({ISS: f"http://127.0.0.1:{port}/jwks.json"}), "Bearer " + token(keys["rsa"]))
    assert "fetching the JWKS URL failed" in err.message


def test_jwks_url_that_never_answers_times_out_then_fails_fast(keys):
    # A listening socket that accepts (the kernel completes the handshake) but never replies.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        auth = Authenticator({ISS: f"http://127.0.0.1:{silent.getsockname()[1]}/jwks.json"}, jwks_timeout_s=0.5)
        t0 = time.monotonic()
        err = rejected(auth, "Bearer " + token(keys["rsa"]))
        first = time.monotonic() - t0
        assert "timed out" in err.message and 0.4 <= first < 3.0
        t0 = time.monotonic()
        assert "timed out" in rejected(auth, "Bearer " + token(keys["rsa"])).message
        assert time.monotonic() - t0 < 0.3  # the failure is remembered briefly: no timeout per request


def test_last_good_url_jwks_is_kept_through_an_outage(jwks_server, keys, monkeypatch):
    jwks_server.docs["/flaky.json"] = {"keys": [jwk_of(keys["rsa"], "k1")]}
    auth = Authenticator({ISS: jwks_server.url + "/flaky.json"})
    assert auth.verify("Bearer " + token(keys["rsa"], kid="k1"), AUD)
    del jwks_server.docs["/flaky.json"]
    monkeypatch.setattr(security, "JWKS_TTL_S", 0.0)  # the cache is stale: the next verify re-fetches (404)
    assert auth.verify("Bearer " + token(keys["rsa"], kid="k1"), AUD)
    assert jwks_server.hits["/flaky.json"] == 2


# ---------------------------------------------------------------- through a real uvicorn server

@pytest.fixture(scope="module")
def app_server(tmp_path_factory, jwks_server):
    """create_app with the issuer's JWKS as a loopback URL (tests/test_service_api.py covers the file form),
    served by uvicorn on a socket bound here, so base_url (the JWT aud prefix) is known before start-up."""
    uvicorn = pytest.importorskip("uvicorn")
    from notecheck.service.app import ServiceSettings, create_app

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = ServiceSettings(base_url=base, trusted_issuers={ISS: jwks_server.url + "/jwks.json"},
                               feedback_db=tmp_path_factory.mktemp("svc") / "feedback.sqlite")
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield base
    server.should_exit = True
    thread.join(10)
    sock.close()


def test_cds_route_through_uvicorn_needs_a_valid_token(app_server, jwks_server, keys):
    import httpx

    from notecheck.patterns_path import load_yaml, patterns_dir

    services = {s["id"]: s for s in load_yaml(patterns_dir() / "cds_services.yaml")["services"]}
    path = "/cds-services/procedure-note-sign"  # the custom hook: the draft note travels in context
    note = (Path(__file__).resolve().parent.parent / "corpora" / "sample"
            / "01_lumbar_ilesi_fluoro_complete.txt").read_text(encoding="utf-8")
    doc = {"resourceType": "DocumentReference", "id": "draft-1", "status": "current",
           "content": [{"attachment": {"contentType": "text/plain; charset=utf-8",
                                       "data": base64.b64encode(note.encode()).decode()}}]}
    body = {"hook": services["procedure-note-sign"]["hook"], "hookInstance": str(uuid.uuid4()),
            "context": {"userId": "Practitioner/1", "patientId": "p-1", "draftNote": doc}}
    fetched = jwks_server.hits.get("/jwks.json", 0)
    with httpx.Client(base_url=app_server, timeout=20) as client:
        def post(header=None):
            return client.post(path, json=body, headers={"Authorization": header} if header else {})

        missing = post()
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == 'Bearer realm="notecheck"'
        assert "missing Authorization header" in missing.json()["detail"]
        wrong_aud = post("Bearer " + token(keys["rsa"], aud=app_server + "/cds-services/epidural-note-check"))
        assert wrong_aud.status_code == 401 and 'error="invalid_token"' in wrong_aud.headers["www-authenticate"]
        assert post("Bearer " + token(keys["rsa-other"], aud=app_server + path)).status_code == 401  # forged
        good = "Bearer " + token(keys["rsa"], "RS384", aud=app_server + path)
        ok = post(good)
        assert ok.status_code == 200, ok.text
        assert isinstance(ok.json()["cards"], list)
        assert post(good).status_code == 401  # the same token again is a replay
        assert post("Bearer " + token(keys["ec384"], "ES384", "ec-1", aud=app_server + path)).status_code == 200
    assert jwks_server.hits["/jwks.json"] == fetched + 1  # one fetch served every request
