"""Bearer-JWT verification for CDS Hooks calls (CDS Hooks 2.0 "Trusting CDS Clients").

Every call from an EHR carries ``Authorization: Bearer <JWT>`` signed with the EHR's private key. The service
keeps an allowlist of issuers, each with the JWK Set that holds its public keys (a file, or an http(s) URL
fetched lazily with a timeout and cached). :meth:`Authenticator.verify` returns the claims or raises
:class:`AuthError`; it never logs or echoes the token itself.

What is checked, in this order (cheap checks first, so a junk header never costs a key fetch):

1. the header is ``Bearer <compact JWS>``;
2. the JWS header's ``alg`` is asymmetric (RS*/PS*/ES*) — ``none`` and HMAC are refused *before* any key is
   looked at, which also rules out the "HS256 signed with the public key as the secret" confusion attack;
3. ``iss`` (read unverified, only to pick the key set) is on the allowlist, and a ``jku`` header, when present,
   names that issuer's configured JWKS URL — a token never chooses where its keys come from;
4. ``kid`` selects a key of that issuer's JWKS whose type (and curve, and ``alg`` when the JWK states one)
   fits the header's ``alg``; the signature verifies with it;
5. ``exp`` present and not past, ``nbf`` (when present) reached, ``iat`` present and not in the future (all
   with ``leeway_s``); ``iss`` and ``aud`` (a string or a list) equal the expected values;
6. ``jti`` present and not seen before from that issuer (per-process cache; several uvicorn workers each keep
   their own, so a replay to another worker inside the token's short lifetime is not caught — a shared store
   would be needed for that).

All rejections are 401 (RFC 6750 ``invalid_token``: "expired, revoked, malformed, or invalid for other
reasons"); :attr:`AuthError.www_authenticate` is the matching response header.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
import urllib.error
import urllib.request
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

log = logging.getLogger(__name__)

# Asymmetric algorithms only (CDS Hooks recommends ES384/RS384; forbids none and HMAC).
RSA_ALGS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
EC_CURVES = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
ALLOWED_ALGS = RSA_ALGS | frozenset(EC_CURVES)

MAX_TOKEN_CHARS = 16_384  # a CDS Hooks JWT is well under 2 kB; bigger is junk, refused before parsing
MAX_JWKS_BYTES = 1_048_576
MIN_RSA_BITS = 2048  # NIST SP 800-131A: shorter RSA keys are no longer acceptable for signatures
JWKS_TTL_S = 300.0  # a fetched URL JWKS is reused this long
JWKS_MIN_REFRESH_S = 30.0  # an unknown kid forces a re-fetch (key rotation), at most this often
JWKS_RETRY_AFTER_FAILURE_S = 10.0  # after a failed fetch, fail fast instead of waiting the timeout per request


class AuthError(Exception):
    """A request that may not be served: ``status`` 401 (or 403) and a clear ``message`` without the token."""

    def __init__(self, message: str, status: int = 401, *, missing: bool = False):
        super().__init__(message)
        self.status = status
        self.message = message
        # RFC 6750 §3.1: a request with no credentials gets the challenge without an error code.
        desc = message.replace("\\", "").replace('"', "'")
        self.www_authenticate = (
            'Bearer realm="notecheck"' if missing
            else f'Bearer realm="notecheck", error="invalid_token", error_description="{desc}"'
        )


def _short(value: Any, limit: int = 120) -> str:
    """A claim or header value quoted for a message (iss and kid are public; still bounded in length)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass
class _KeySet:
    keys: dict[str, tuple[dict, Any]]  # kid -> (the JWK's public members, cryptography public key)
    loaded_at: float
    stamp: Any = None  # the file's (mtime_ns, size), so an edited JWKS file is re-read


def _parse_jwks(raw: bytes, where: str) -> dict[str, tuple[dict, Any]]:
    """Usable signing keys by kid. Symmetric (``oct``) keys are never usable: a shared secret is not a JWKS."""
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{where} is not JSON ({exc.__class__.__name__})") from None
    members = doc.get("keys") if isinstance(doc, dict) else None
    if not isinstance(members, list):
        raise ValueError(f"{where} is not a JWK Set (no \"keys\" list)")
    keys: dict[str, tuple[dict, Any]] = {}
    for jwk in members:
        if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str):
            continue
        if jwk.get("use", "sig") != "sig":
            continue
        try:
            if jwk.get("kty") == "RSA":
                key = RSAAlgorithm.from_jwk(jwk)
            elif jwk.get("kty") == "EC":
                key = ECAlgorithm.from_jwk(jwk)
            else:
                continue
        except (jwt.InvalidKeyError, ValueError, TypeError, KeyError):
            continue  # one malformed key does not spoil the others
        if hasattr(key, "public_key"):  # a JWK published with its private part: use only the public one
            key = key.public_key()
        keys[jwk["kid"]] = (jwk, key)
    if not keys:
        raise ValueError(f"{where} holds no usable RSA or EC signing key with a kid")
    return keys


class _JwksSource:
    """One issuer's JWK Set: a file (re-read when it changes) or an http(s) URL (fetched lazily, cached)."""

    def __init__(self, issuer: str, source: str, timeout_s: float):
        self.issuer = issuer
        self.source = str(source)
        self.is_url = self.source.lower().startswith(("http://", "https://"))
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._cached: _KeySet | None = None
        self._failed_at = float("-inf")
        self._last_error = ""

    def key(self, kid: str) -> tuple[dict, Any]:
        with self._lock:
            keys = self._load(force=False)
            if kid not in keys and self.is_url:
                keys = self._load(force=True)  # the EHR may have rotated its keys
        if kid not in keys:
            raise AuthError(f"no key with kid {_short(kid)} in the JWKS of issuer {_short(self.issuer)}")
        return keys[kid]

    def _load(self, *, force: bool) -> dict[str, tuple[dict, Any]]:
        now = time.monotonic()
        cached = self._cached
        if self.is_url:
            if cached and now - cached.loaded_at < (JWKS_MIN_REFRESH_S if force else JWKS_TTL_S):
                return cached.keys
            if now - self._failed_at < JWKS_RETRY_AFTER_FAILURE_S:
                if cached:
                    return cached.keys
                raise self._error(self._last_error)
            try:
                self._cached = _KeySet(_parse_jwks(self._fetch(), "the JWKS at that URL"), now)
            except (OSError, ValueError) as exc:
                self._failed_at = now
                self._last_error = str(exc) if isinstance(exc, ValueError) else _fetch_reason(exc)
                log.warning("JWKS of issuer %s could not be loaded: %s", _short(self.issuer), self._last_error)
                if cached:
                    return cached.keys  # keep serving with the last good keys through an outage
                raise self._error(self._last_error) from None
            return self._cached.keys
        path = Path(self.source).expanduser()
        try:
            st = path.stat()
            stamp = (st.st_mtime_ns, st.st_size)
            if cached and cached.stamp == stamp:
                return cached.keys
            if st.st_size > MAX_JWKS_BYTES:
                raise ValueError(f"JWKS file {path} is larger than {MAX_JWKS_BYTES} bytes")
            keys = _parse_jwks(path.read_bytes(), f"JWKS file {path}")
        except FileNotFoundError:
            raise self._error(f"JWKS file {path} does not exist") from None
        except (OSError, ValueError) as exc:
            raise self._error(str(exc)) from None
        self._cached = _KeySet(keys, now, stamp)
        return keys

    def _fetch(self) -> bytes:
        req = urllib.request.Request(self.source, headers={"Accept": "application/json"})
        with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:  # noqa: S310 (scheme checked)
            body = resp.read(MAX_JWKS_BYTES + 1)
        if len(body) > MAX_JWKS_BYTES:
            raise ValueError(f"the JWKS at that URL is larger than {MAX_JWKS_BYTES} bytes")
        return body

    def _error(self, reason: str) -> AuthError:
        return AuthError(f"the keys of issuer {_short(self.issuer)} could not be loaded: {reason}")


def _fetch_reason(exc: OSError) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"fetching {exc.url} answered HTTP {exc.code}"
    reason = getattr(exc, "reason", exc)
    if isinstance(reason, TimeoutError) or isinstance(exc, TimeoutError) or "timed out" in str(reason):
        return "fetching the JWKS URL timed out"
    return f"fetching the JWKS URL failed ({reason})"


@dataclass
class _JtiCache:
    """Seen (iss, jti) pairs until their token expires; bounded, dropping the expired, then the oldest."""

    size: int
    _seen: OrderedDict = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, iss: str, jti: str, expires: float) -> bool:
        """Record the pair; False when it was already there (a replay)."""
        key = (iss, jti)
        now = time.time()
        with self._lock:
            if key in self._seen:
                if self._seen[key] >= now:
                    return False
                del self._seen[key]  # its token has expired, so it cannot be replayed anyway
            if len(self._seen) >= self.size:
                for k in [k for k, exp in self._seen.items() if exp < now]:
                    del self._seen[k]
                while len(self._seen) >= self.size:
                    self._seen.popitem(last=False)
            self._seen[key] = expires
            return True


class Authenticator:
    """Verifies CDS Hooks bearer JWTs against an allowlist of issuers and their JWK Sets."""

    def __init__(self, trusted_issuers: dict[str, str], *, leeway_s: int = 30, jti_cache_size: int = 10000,
                 jwks_timeout_s: float = 3.0):
        if not trusted_issuers:
            raise ValueError("Authenticator needs at least one trusted issuer (iss -> JWKS file or URL)")
        for iss, src in trusted_issuers.items():
            if not isinstance(iss, str) or not iss or not isinstance(src, (str, os.PathLike)) or not str(src):
                raise ValueError("trusted issuers map each issuer (a string) to a JWKS file path or http(s) URL")
            if "://" in str(src) and not str(src).lower().startswith(("http://", "https://")):
                raise ValueError(f"JWKS source of issuer {_short(iss)} must be a file path or an http(s) URL")
        self.leeway_s = leeway_s
        self._sources = {iss: _JwksSource(iss, str(src), jwks_timeout_s) for iss, src in trusted_issuers.items()}
        self._jti = _JtiCache(jti_cache_size)

    def verify(self, authorization: str | None, audience: str) -> dict:
        """The verified claims of the request's bearer JWT, or :class:`AuthError` saying why not."""
        try:
            return self._verify(authorization, audience)
        except AuthError as exc:
            log.info("bearer token rejected: %s", exc.message)
            raise
        except (TypeError, ValueError, OverflowError, ArithmeticError) as exc:
            # Hostile claim values a library did not expect (exp = 1e400, a list as kid, ...): still a 401.
            log.info("bearer token rejected: unusable claim or header value (%s)", type(exc).__name__)
            raise AuthError("the JWT has a claim or header value of the wrong type") from None

    def _verify(self, authorization: str | None, audience: str) -> dict:
        if authorization is None or not authorization.strip():
            raise AuthError("missing Authorization header: send 'Authorization: Bearer <JWT>' signed by a "
                            "trusted issuer", missing=True)
        parts = authorization.split()
        if parts[0].lower() != "bearer":
            raise AuthError("the Authorization header must use the Bearer scheme")
        if len(parts) != 2:
            raise AuthError("the Authorization header must be 'Bearer <JWT>' with a single token")
        token = parts[1]
        if len(token) > MAX_TOKEN_CHARS or token.count(".") != 2:
            raise AuthError("the bearer token is not a well-formed JWT (compact JWS: header.payload.signature)")
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise AuthError("the bearer token is not a well-formed JWT (compact JWS: header.payload.signature)"
                            ) from None

        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in ALLOWED_ALGS:
            raise AuthError(f"JWT alg {_short(alg)} is not allowed: sign with an asymmetric key "
                            f"({', '.join(sorted(ALLOWED_ALGS))}); 'none' and HMAC are refused")
        iss = unverified.get("iss")
        if not isinstance(iss, str):
            raise AuthError("the JWT has no iss claim")
        source = self._sources.get(iss)
        if source is None:
            raise AuthError(f"JWT issuer {_short(iss)} is not trusted by this service")
        jku = header.get("jku")
        if jku is not None and not (source.is_url and jku == source.source):
            raise AuthError(f"JWT jku header is not the JWKS URL configured for issuer {_short(iss)}")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AuthError("the JWT header has no kid naming the signing key")
        jwk, key = source.key(kid)
        self._check_key_fits(alg, jwk, key, kid)
        # Typed before PyJWT looks at them, so the message does not depend on PyJWT's version.
        if "jti" in unverified and (not isinstance(unverified["jti"], str) or not unverified["jti"]):
            raise AuthError("the JWT jti claim must be a non-empty string")
        for name in ("exp", "iat", "nbf"):
            value = unverified.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not math.isfinite(value)):
                raise AuthError(f"the JWT {name} claim must be a number (seconds since the epoch)")

        try:
            claims = jwt.decode(
                token, key, algorithms=[alg], audience=audience, issuer=iss, leeway=self.leeway_s,
                options={"require": ["exp", "iat", "iss", "aud", "jti"], "verify_iat": False},
            )
        except jwt.MissingRequiredClaimError as exc:
            raise AuthError(f"the JWT has no {exc.claim} claim") from None
        except jwt.InvalidSignatureError:
            raise AuthError(f"the JWT signature does not verify with key {_short(kid)} of issuer {_short(iss)}"
                            ) from None
        except jwt.ExpiredSignatureError:
            raise AuthError("the JWT has expired (exp is past)") from None
        except jwt.ImmatureSignatureError:
            raise AuthError("the JWT is not valid yet (nbf is in the future)") from None
        except jwt.InvalidAudienceError:
            raise AuthError(f"the JWT aud does not name this service URL {_short(audience)}") from None
        except jwt.PyJWTError as exc:
            # DecodeError for a non-numeric exp/nbf, InvalidIssuerError, ...: PyJWT's text names the claim only.
            raise AuthError(f"the JWT is invalid: {exc}") from None

        if claims["iat"] > time.time() + self.leeway_s:
            raise AuthError("the JWT iat is in the future")
        jti = claims["jti"]
        # Recorded only now, once the token is genuine: forged tokens cannot fill the cache.
        if not self._jti.add(iss, jti, float(claims["exp"]) + self.leeway_s):
            raise AuthError("the JWT jti was already used (replayed token)")
        return claims

    @staticmethod
    def _check_key_fits(alg: str, jwk: dict, key: Any, kid: str) -> None:
        """The key named by kid must be of the kind the header's alg needs (no cross-algorithm use)."""
        if "alg" in jwk and jwk["alg"] != alg:
            raise AuthError(f"key {_short(kid)} is for {_short(jwk['alg'])}, but the JWT is signed with {alg}")
        if alg in RSA_ALGS:
            ok = isinstance(key, rsa.RSAPublicKey)
        else:
            ok = isinstance(key, ec.EllipticCurvePublicKey) and jwk.get("crv") == EC_CURVES[alg]
        if not ok:
            kind = " ".join(str(v) for v in (jwk.get("kty"), jwk.get("crv")) if v)
            raise AuthError(f"key {_short(kid)} ({kind}) cannot verify a {alg} signature")
        if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
            raise AuthError(f"key {_short(kid)} is a {key.key_size}-bit RSA key; at least {MIN_RSA_BITS} bits "
                            "are required")
