"""A local OIDC issuer: discovery and JWKS over HTTP on loopback, and tokens signed with its keys.

Served when the stack trusts no issuer and no shared secret, so the real authorizer checks RS256 tokens as it would
an identity provider's; tests use it as a stand-in provider.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from handlers import tokens

KEY_FILE = Path(__file__).resolve().parent.parent / "build" / "local-issuer.json"
"""Where the emulator keeps its issuer's key and address; `python -m client token` reads it."""

DEFAULT_AUDIENCE = "websocket-chat-local"
"""The audience of local tokens when the stack sets no `jwtAudience`."""

DISCOVERY_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/.well-known/jwks.json"


@dataclass(frozen=True)
class SigningKey:
    """A private key, its `kid` and algorithm (RS256 or ES256), and the public JWK the issuer publishes."""

    kid: str
    algorithm: str
    private_key: Any = field(repr=False)

    @classmethod
    def generate(cls, algorithm: str = "RS256", kid: str | None = None) -> SigningKey:
        """A new key for `algorithm` (RSA 2048 or EC P-256)."""
        if algorithm == "RS256":
            private: PrivateKeyTypes = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        elif algorithm == "ES256":
            private = ec.generate_private_key(ec.SECP256R1())
        else:
            raise ValueError(f"the local issuer signs with RS256 or ES256, not {algorithm}")
        return cls(kid or secrets.token_hex(8), algorithm, private)

    @property
    def public_jwk(self) -> dict[str, Any]:
        """The public half as a JWK with `kid`, `alg` and `use`."""
        algorithm = jwt.get_algorithm_by_name(self.algorithm)
        jwk: dict[str, Any] = json.loads(algorithm.to_jwk(self.private_key.public_key()))
        return {**jwk, "kid": self.kid, "alg": self.algorithm, "use": "sig"}

    def private_pem(self) -> str:
        """The private key as unencrypted PKCS #8 PEM (for the ignored key file)."""
        pem: bytes = self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return pem.decode("ascii")

    @classmethod
    def from_pem(cls, kid: str, algorithm: str, pem: str) -> SigningKey:
        """A key read back from `private_pem`."""
        return cls(kid, algorithm, serialization.load_pem_private_key(pem.encode("ascii"), password=None))


class LocalIssuer:
    """Serves `DISCOVERY_PATH` and `JWKS_PATH` on 127.0.0.1 and mints tokens with its first key."""

    def __init__(self, keys: list[SigningKey], audience: str = DEFAULT_AUDIENCE) -> None:
        self.keys = list(keys)
        self.audience = audience
        self.available = True
        """False answers every request with 503, as an identity provider's outage would."""
        self.requests: list[str] = []
        """Paths requested so far (tests count JWKS fetches)."""
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        """The issuer identifier, `http://127.0.0.1:<port>` (after `start`)."""
        assert self._server is not None, "start() first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def jwks_url(self) -> str:
        """Where the keys are published."""
        return self.url + JWKS_PATH

    def documents(self) -> dict[str, dict[str, Any]]:
        """What the server answers, by path."""
        discovery = {"issuer": self.url, "jwks_uri": self.jwks_url, "id_token_signing_alg_values_supported": []}
        discovery["id_token_signing_alg_values_supported"] = sorted({key.algorithm for key in self.keys})
        return {DISCOVERY_PATH: discovery, JWKS_PATH: {"keys": [key.public_jwk for key in self.keys]}}

    def mint(self, name: str, ttl_seconds: int = 3600, key: SigningKey | None = None, **claims: Any) -> str:
        """A token from this issuer for this audience; `claims` add to or override the standard ones."""
        signer = key or self.keys[0]
        issued = int(time.time())
        payload: dict[str, Any] = {"iss": self.url, "aud": self.audience, "sub": f"local|{name}", "name": name}
        payload.update(iat=issued, exp=issued + ttl_seconds)
        payload.update(claims)
        return jwt.encode(payload, signer.private_key, algorithm=signer.algorithm, headers={"kid": signer.kid})

    def start(self, port: int = 0) -> LocalIssuer:
        """Listen on 127.0.0.1 (`port` 0 picks a free one) in a background thread."""
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                issuer.requests.append(self.path)
                document = issuer.documents().get(self.path)
                status = 503 if not issuer.available else 200 if document is not None else 404
                body = json.dumps(document if status == 200 else {"error": status}).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self._server.serve_forever, name="local-issuer", daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def save(self, path: Path = KEY_FILE) -> None:
        """Write the signing key, the issuer's address and audience where `python -m client token` finds them."""
        key = self.keys[0]
        record = {"issuer": self.url, "audience": self.audience, "kid": key.kid, "algorithm": key.algorithm}
        record["privateKeyPem"] = key.private_pem()
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        # Owner-only: it holds a private key, even if one that only this machine's emulator trusts.
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            json.dump(record, file, indent=2)
        os.replace(partial, path)


@dataclass(frozen=True)
class SavedIssuer:
    """What `build/local-issuer.json` holds: enough to mint tokens the running emulator accepts."""

    issuer: str
    audience: str
    key: SigningKey

    def mint(self, name: str, ttl_seconds: int) -> str:
        """A token for `name` (subject `local|name`), checked like every minted token."""
        return tokens.mint_token(
            self.key.private_key,
            name=name,
            subject=f"local|{name}",
            ttl_seconds=ttl_seconds,
            algorithm=self.key.algorithm,
            issuer=self.issuer,
            audience=self.audience,
            kid=self.key.kid,
        )


def load_saved(path: Path = KEY_FILE) -> SavedIssuer:
    """The saved issuer; OSError when the file is missing, ValueError when it is not what `save` writes."""
    record = json.loads(path.read_text(encoding="utf-8"))
    try:
        key = SigningKey.from_pem(record["kid"], record["algorithm"], record["privateKeyPem"])
        return SavedIssuer(issuer=record["issuer"], audience=record["audience"], key=key)
    except (KeyError, TypeError) as error:
        raise ValueError(f"{path} is not a local issuer's key file: {error}") from None


def previous_port(path: Path = KEY_FILE) -> int:
    """The port the saved issuer listened on, or 0 (any free port) when there is no readable saved issuer."""
    try:
        port = urllib.parse.urlsplit(load_saved(path).issuer).port
    except (OSError, ValueError):
        return 0
    return port or 0


def key_for_run(path: Path = KEY_FILE) -> SigningKey:
    """The key of the saved issuer when there is a readable one, else a new RS256 key (saved once serving starts)."""
    try:
        return load_saved(path).key
    except (OSError, ValueError):
        return SigningKey.generate("RS256")
