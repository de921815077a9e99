"""The one log line for a refused credential (ID token, App Check token, guest key, OIDC token):
what was wrong with it - its length, its shape, which check refused it - never its value."""

from __future__ import annotations

import logging


def check_of(error: BaseException | str) -> str:
    """Which check refused a credential: the exception's class name (and its cause's), never its
    text, which libraries write with the value in it ("Wrong number of segments in token: b'...'")."""
    if isinstance(error, str):
        return error
    name = type(error).__name__
    cause = error.__cause__ or error.__context__
    return f"{name} ({type(cause).__name__})" if cause is not None else name


def log_refused(logger: logging.Logger, credential: str, value: str, error: BaseException | str) -> None:
    """One INFO line: `credential` (what it is, e.g. "an ID token") was refused by `error`'s check;
    `value` is described by its length and its count of dot-separated segments only."""
    check = check_of(error)
    segments = value.count(".") + 1 if value else 0
    logger.info(
        "refused %s (%s): %d characters, %d dot-separated segments",
        credential,
        check,
        len(value),
        segments,
        extra={"fields": {"credential": credential, "check": check, "length": len(value), "segments": segments}},
    )
