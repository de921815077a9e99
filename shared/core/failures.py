"""The one translator of a dependency's failure (PostgreSQL, Firebase Auth, Firestore,
Cloud Storage) into DependencyUnavailable, with one log line (docs/design/http.md)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from shared.core.errors import DependencyUnavailable
from shared.core.logs import get_logger

log = get_logger("failures")

MAX_LINE = 300


def one_line(error: BaseException) -> str:
    """A dependency's error in one short log line: PostgreSQL's SQLSTATE and message
    (pg8000 carries them in a dict, possibly wrapped by SQLAlchemy), else the
    error's type and the first line of its text."""
    original = getattr(error, "orig", None) or error
    args = getattr(original, "args", ())
    if args and isinstance(args[0], dict):
        return f"{args[0].get('C')}: {args[0].get('M')}"[:MAX_LINE]
    lines = f"{type(original).__name__}: {original}".splitlines()
    return (lines[0] if lines else type(original).__name__)[:MAX_LINE]


def unavailable(dependency: str, error: BaseException, message: str) -> DependencyUnavailable:
    """Log that `dependency` failed with `error`; the DependencyUnavailable to raise,
    whose `message` is what a client is told."""
    log.warning("%s unavailable: %s", dependency, one_line(error), extra={"fields": {"dependency": dependency}})
    return DependencyUnavailable(message)


@contextmanager
def unavailable_when(dependency: str, is_transient: Callable[[BaseException], bool], message: str) -> Iterator[None]:
    """Within the block, an error for which is_transient(error) is true becomes
    DependencyUnavailable(message); any other error passes unchanged."""
    try:
        yield
    except DependencyUnavailable:
        raise
    except Exception as error:
        if not is_transient(error):
            raise
        raise unavailable(dependency, error, message) from error
