"""API key material: generation and the fast hash.

SHA-256 rather than a password hasher: keys carry 190 bits of randomness, so a
slow hash buys nothing, and PBKDF2 would cost ~100 ms on every request.
"""

from __future__ import annotations

import hashlib
import re
import secrets

from app.path_parameters import PathRule
from app.text_rules import FullMatch

PREFIX_LENGTH = 11  # "pk_" or "sk_" plus 8 characters: enough to tell keys apart in logs
# What key_prefix() gives for a key from key_generate(): the kind, then 8 characters of token_urlsafe.
KEY_PREFIX = FullMatch(r"(?:pk|sk)_[A-Za-z0-9_-]{8}")
KEY_PREFIX_PATH_RULE = PathRule(
    pattern=KEY_PREFIX, code="validation_failed", message="A key prefix is pk_ or sk_ and 8 more characters."
)

MASK = "…"
# A secret key where it does not belong (a URL, a log line), also with its underscore
# percent-encoded: "sk_" and 32 characters; 20 or more leaves a SKU such as "sk_12" alone.
_SECRET_KEY_TOKEN = re.compile(r"sk(?:_|%5[Ff])[A-Za-z0-9_%-]{20,}")


def key_generate(kind: str) -> str:
    return f"{kind}_{secrets.token_urlsafe(24)}"


def key_hash(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def key_prefix(raw_key: str) -> str:
    return raw_key[:PREFIX_LENGTH]


def key_kind(raw_key: str) -> str | None:
    head = raw_key[:3]
    return {"pk_": "pk", "sk_": "sk"}.get(head)


def secret_keys_masked(text: str) -> str:
    """``text`` with every secret key in it cut to its prefix (what the admin shows) and ``…``."""
    return _SECRET_KEY_TOKEN.sub(lambda found: key_prefix(found[0]) + MASK, text)
