"""Researchers (SPEC §10): Firebase users whose ID token carries the custom claim
`researcher` - `true` for every experiment, or a list of experimentIds for only
those. This module is the one place that decides what a researcher may do.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.auth import User
from shared.errors import PermissionDenied, Unauthenticated


@dataclass(frozen=True)
class Researcher:
    """A user with the researcher claim, and the experiments it covers."""

    uid: str
    experiments: frozenset[str] | None  # None: every experiment

    @property
    def sees_everything(self) -> bool:
        return self.experiments is None


def researcher(user: User | None) -> Researcher:
    """The caller as a researcher; 401 without a token, 403 without the claim."""
    if user is None:
        raise Unauthenticated("Researcher functions need 'Authorization: Bearer <Firebase ID token>'.")
    claim = user.researcher_claim
    if claim is True:
        return Researcher(user.uid, None)
    if isinstance(claim, list) and claim and all(isinstance(e, str) and e for e in claim):
        return Researcher(user.uid, frozenset(claim))
    raise PermissionDenied("This account is not a researcher (no 'researcher' claim).")


def require_every_experiment(user: User | None) -> Researcher:
    """A researcher with `researcher: true`: what acting on a visitor (who may have
    taken part in any experiment) needs, such as erase_visitor."""
    found = researcher(user)
    if not found.sees_everything:
        raise PermissionDenied("Only a researcher for every experiment (researcher: true) may do this; "
                               "this account covers only some experiments.")
    return found
