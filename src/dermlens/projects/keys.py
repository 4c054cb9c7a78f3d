"""Secrets: prediction keys and the admin token. Only their SHA-256 is stored; comparison is constant-time."""

from __future__ import annotations

import hashlib
import hmac
import secrets


def new_secret() -> str:
    """A fresh random secret (32 bytes, URL-safe text)."""
    return secrets.token_urlsafe(32)


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str | None, stored_hash: str) -> bool:
    """Whether ``secret`` hashes to ``stored_hash``.

    >>> secret_matches("abc", secret_hash("abc")), secret_matches("abd", secret_hash("abc"))
    (True, False)
    """
    return bool(secret) and hmac.compare_digest(secret_hash(secret or ""), stored_hash)
