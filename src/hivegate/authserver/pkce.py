"""PKCE (RFC 7636) with S256 only, and the random values the flows need."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

__all__ = ["challenge_of", "new_verifier", "random_id", "valid_challenge", "valid_verifier", "verifier_matches"]

_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
_CHALLENGE = re.compile(r"[A-Za-z0-9\-_]{43}")  # base64url of a SHA-256 digest, unpadded


def random_id(nbytes: int = 32) -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(nbytes)).rstrip(b"=").decode()


def new_verifier() -> str:
    return random_id(48)  # 64 characters


def challenge_of(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def valid_verifier(verifier: str) -> bool:
    return _VERIFIER.fullmatch(verifier) is not None


def valid_challenge(challenge: str) -> bool:
    return _CHALLENGE.fullmatch(challenge) is not None


def verifier_matches(verifier: str, challenge: str) -> bool:
    """Constant-time S256 check."""
    return valid_verifier(verifier) and hmac.compare_digest(challenge_of(verifier), challenge)
