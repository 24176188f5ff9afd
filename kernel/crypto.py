"""Secrets at rest and single-use tokens, the same way in every service.

- Tokens handed to users (refresh, invitation, password reset) are 256-bit random
  strings; only their SHA-256 is stored. They carry full entropy, so a fast hash is
  the right one (a slow password hash adds nothing against a 2^256 search).
- Secrets we must use again (SMTP password, Proxmox credentials, TOTP secrets) are
  encrypted with Fernet (AES-128-CBC + HMAC-SHA256) under GATEHOUSE_SECRET_KEY.
- Short secrets we only compare (2FA recovery codes, ~50 bits) get a keyed digest:
  a plain SHA-256 of so few bits is reversed by brute force from a stolen database alone.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from cryptography.fernet import Fernet, InvalidToken


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    return hashlib.sha256((token or "").encode()).hexdigest()


def same_digest(token: str, digest: str) -> bool:
    return hmac.compare_digest(token_digest(token), digest or "")


class SecretBox:
    """Encrypts short secrets for storage; any passphrase works as the key."""

    def __init__(self, key: str):
        derived = hashlib.sha256(("gatehouse-secret-box:" + key).encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))
        self._digest_key = hashlib.sha256(("gatehouse-keyed-digest:" + key).encode()).digest()

    def seal(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def open(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken:
            raise ValueError("stored secret cannot be decrypted: was GATEHOUSE_SECRET_KEY changed?") from None

    def keyed_digest(self, text: str) -> str:
        """HMAC-SHA256 under (a key derived from) the box's key: useless without that key."""
        return hmac.new(self._digest_key, text.encode(), hashlib.sha256).hexdigest()
