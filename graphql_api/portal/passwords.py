"""Portal passwords: a policy checked before anything is stored, and argon2 hashes
computed off the event loop (each costs tens of milliseconds of CPU on purpose)."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from graphql_api.kernel.errors import ErrorCode, Problems
from graphql_api.kernel.validation import text_problem

MIN_LENGTH = 10
MAX_LENGTH = 128
# The most used passwords of public breach lists that are at least MIN_LENGTH long, and
# the obvious Dutch ones; a longer list belongs in a plugin.
COMMON = frozenset(
    {
        "1234567890",
        "12345678910",
        "0123456789",
        "1q2w3e4r5t",
        "qwertyuiop",
        "password12",
        "password123",
        "password1234",
        "welkom1234",
        "welkom12345",
        "wachtwoord",
        "wachtwoord1",
        "wachtwoord123",
        "iloveyou12",
        "qwerty1234",
        "qwerty12345",
        "1111111111",
        "0000000000",
        "abcdefghij",
        "abcd123456",
        "zonnepanelen",
        "energie123",
    }
)

# OWASP's minimum for argon2id: 19 MiB, two passes, one lane.
HASHER = PasswordHasher(time_cost=2, memory_cost=19_456, parallelism=1)
DUMMY_HASH = HASHER.hash("a password nobody has")
"""Verified against when no account matches, so an unknown e-mail costs the same time."""


def check_policy(problems: Problems, field: str, password: str, email: str | None) -> None:
    """Record why ``password`` may not be used, if it may not."""
    if len(password) < MIN_LENGTH:
        problems.add([field], ErrorCode.TOO_SHORT, f"Use at least {MIN_LENGTH} characters.")
    elif len(password) > MAX_LENGTH:
        problems.add([field], ErrorCode.TOO_LONG, f"Use at most {MAX_LENGTH} characters.")
    elif (reason := text_problem(password)) is not None:
        problems.add([field], ErrorCode.INVALID_TEXT, f"The password {reason}.")
    elif password.casefold() in COMMON or (email and password.casefold() == email.casefold()):
        problems.add([field], ErrorCode.WEAK_PASSWORD, "This password is too easy to guess.")


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(HASHER.hash, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches; always spends the time of one verification."""
    try:
        return await asyncio.to_thread(HASHER.verify, password_hash or DUMMY_HASH, password) and (
            password_hash is not None
        )
    except (VerificationError, InvalidHashError):
        return False
