"""The studio password: checking it in constant time, and a hash so the plain text need not be kept.

A hash looks like ``scrypt:16384:8:1:<salt>:<key>`` (salt and key in unpadded URL-safe base64);
``python -m imgedit.password`` asks for a password twice (or reads one line from a pipe) and
prints one, for ``IMGEDIT_PASSWORD_HASH``. Only the standard library: ``hashlib.scrypt``.

Usage: ``checker = PasswordChecker.from_settings(settings); checker.matches(typed)``
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import hmac
import secrets
import sys
from dataclasses import dataclass

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
"""Cost of one check: about 60 ms and 16 MiB here. Login attempts are rate-limited as well."""
_MAX_MEMORY = 64 * 1024 * 1024
_HASH_HELP = "expected the output of 'python -m imgedit.password' (scrypt:N:r:p:salt:key)"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=_MAX_MEMORY, dklen=length
    )


def hash_password(password: str) -> str:
    """A new salted scrypt hash of ``password`` in the ``IMGEDIT_PASSWORD_HASH`` format."""
    salt = secrets.token_bytes(16)
    key = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P, 32)
    return f"scrypt:{SCRYPT_N}:{SCRYPT_R}:{SCRYPT_P}:{_b64(salt)}:{_b64(key)}"


@dataclass(frozen=True, slots=True)
class _Hash:
    n: int
    r: int
    p: int
    salt: bytes
    key: bytes


def parse_hash(text: str) -> _Hash:
    """The parts of a hash; ``ValueError`` with a plain message if it is not one of ours."""
    parts = text.split(":")
    if len(parts) != 6 or parts[0] != "scrypt":
        raise ValueError(_HASH_HELP)
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt, key = _unb64(parts[4]), _unb64(parts[5])
    except ValueError:
        raise ValueError(_HASH_HELP) from None
    if n < 2 or n & (n - 1) or not 1 <= r <= 64 or not 1 <= p <= 16 or 128 * n * r > _MAX_MEMORY:
        raise ValueError("the scrypt cost in IMGEDIT_PASSWORD_HASH is out of range; make a new hash")
    if len(salt) < 8 or len(key) < 16:
        raise ValueError(_HASH_HELP)
    return _Hash(n, r, p, salt, key)


class PasswordChecker:
    """Says whether a typed password is the studio's, taking the same time whatever is typed."""

    def __init__(self, *, plain: str = "", hashed: str = "") -> None:
        if bool(plain) == bool(hashed):
            raise ValueError("give exactly one of plain or hashed")
        self._hash = parse_hash(hashed) if hashed else None
        self._plain_digest = hashlib.sha256(plain.encode("utf-8")).digest() if plain else b""

    def matches(self, typed: str) -> bool:
        if self._hash is not None:
            h = self._hash
            candidate = _scrypt(typed, h.salt, h.n, h.r, h.p, len(h.key))
            return hmac.compare_digest(candidate, h.key)
        # Digests have one length whatever was typed, so the comparison's time says nothing.
        return hmac.compare_digest(hashlib.sha256(typed.encode("utf-8")).digest(), self._plain_digest)


def main(argv: list[str] | None = None) -> int:
    """``python -m imgedit.password``: print a hash for IMGEDIT_PASSWORD_HASH."""
    if sys.stdin.isatty():
        first = getpass.getpass("Password for imgedit: ")
        if getpass.getpass("Once more: ") != first:
            print("The two passwords differ; nothing printed.", file=sys.stderr)
            return 1
    else:
        first = sys.stdin.readline().rstrip("\r\n")
    if len(first) < 8:
        print("Use at least 8 characters; nothing printed.", file=sys.stderr)
        return 1
    print(hash_password(first))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
