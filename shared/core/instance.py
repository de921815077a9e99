"""Clients made on first use and kept for the life of the instance.

Serverless habit: nothing connects at import time, and warm invocations reuse
what the first one made (the engine, the Firebase app, the Google clients).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class InstanceCache(Generic[T]):
    """One value per instance, created by `create` on the first get()."""

    def __init__(self, create: Callable[[], T], close: Callable[[T], None] | None = None):
        self._create = create
        self._close = close
        self._value: T | None = None
        self._lock = threading.Lock()

    def get(self) -> T:
        if self._value is None:
            with self._lock:
                if self._value is None:
                    self._value = self._create()
        return self._value

    def reset(self) -> None:
        """Close and forget the value (tests that change the environment, or after a fork)."""
        with self._lock:
            if self._value is not None and self._close is not None:
                self._close(self._value)
            self._value = None
