"""Researchers: the one place that decides what the `researcher` claim allows, and the
command that grants, revokes and lists it (docs/design/researchers.md)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from shared.core.errors import PermissionDenied, Unauthenticated
from shared.web.auth import User

CLAIM = "researcher"


@dataclass(frozen=True)
class Researcher:
    """A user with the researcher claim, and the experiments it covers."""

    uid: str
    experiments: frozenset[str] | None  # None: every experiment

    @property
    def sees_everything(self) -> bool:
        return self.experiments is None

    def may_see(self, experiment_id: str | None) -> bool:
        """Sessions without an experimentId (None) are for `researcher: true` only."""
        return self.experiments is None or (experiment_id is not None and experiment_id in self.experiments)


@dataclass(frozen=True)
class Scope:
    """Which sessions a researcher function reads: every session, or those of these
    experimentIds and, with `without_experiment`, those without one. Its `params`
    are what the researcher statements (study_stats_*, export_*) select by."""

    everything: bool
    experiments: tuple[str, ...] = ()
    without_experiment: bool = False

    @property
    def params(self) -> dict:
        return {
            "everything": self.everything,
            "experiments": list(self.experiments),
            "without_experiment": self.without_experiment,
        }

    def to_json(self) -> dict:
        """The scope as the export's manifest states it: the experimentIds, null for those without one."""
        if self.everything:
            return {"experimentIds": "all"}
        return {"experimentIds": [*self.experiments, *([None] if self.without_experiment else [])]}


def researcher(user: User | None) -> Researcher:
    """The caller as a researcher; 401 without a token, 403 without the claim."""
    if user is None:
        raise Unauthenticated("Researcher functions need 'Authorization: Bearer <Firebase ID token>'.")
    claim = user.researcher_claim
    if claim is True:
        return Researcher(user.uid, None)
    if isinstance(claim, list) and claim and all(isinstance(e, str) and e for e in claim):
        return Researcher(user.uid, frozenset(claim))
    # A claim reaches a token when the token is next issued: a token taken before
    # `researchers grant` lacks it, and the remedy is a new token, not a refusal to try again.
    raise PermissionDenied(
        "This ID token carries no 'researcher' claim. If the role was granted after the token was issued, "
        "sign in again (or refresh the token: getIdToken(true)) and retry; otherwise ask whoever runs the "
        'study to grant it (make researcher ARGS="grant EMAIL").'
    )


def scope(found: Researcher, requested: Iterable[str | None] = ()) -> Scope:
    """The sessions a request may read: those of the experiments it asks for (None:
    the sessions without an experimentId), or, when it asks for none, every one the
    researcher may see. 403 for an experiment outside the researcher's claim."""
    requested = list(dict.fromkeys(requested))  # in order, once each
    if not requested:
        if found.experiments is None:
            return Scope(everything=True)
        return Scope(everything=False, experiments=tuple(sorted(found.experiments)))
    refused = [e for e in requested if not found.may_see(e)]
    if refused:
        names = ", ".join("sessions without an experimentId" if e is None else repr(e) for e in refused)
        covered = ", ".join(sorted(found.experiments or ()))
        raise PermissionDenied(f"This researcher account covers only the experiments {covered}; not {names}.")
    return Scope(
        everything=False, experiments=tuple(e for e in requested if e is not None), without_experiment=None in requested
    )


def require_every_experiment(user: User | None) -> Researcher:
    """A researcher with `researcher: true`: what acting on a visitor (who may have
    taken part in any experiment) needs, such as erase_visitor."""
    found = researcher(user)
    if not found.sees_everything:
        raise PermissionDenied(
            "Only a researcher for every experiment (researcher: true) may do this; "
            "this account covers only some experiments."
        )
    return found


# The command ------------------------------------------------------------------


def claim_value(experiments: list[str] | None):
    """The claim for these experiments: true for every one."""
    return True if not experiments else sorted(set(experiments))


def grant(app, email: str, experiments: list[str] | None = None):
    """Give the user with this email the researcher claim (app: a firebase_admin App);
    returns the claim set."""
    from firebase_admin import auth

    user = auth.get_user_by_email(email, app=app)
    claims = dict(user.custom_claims or {})
    claims[CLAIM] = claim_value(experiments)
    auth.set_custom_user_claims(user.uid, claims, app=app)
    return claims[CLAIM]


def revoke(app, email: str) -> bool:
    """Take the researcher claim away (other claims stay) and revoke the user's
    tokens, so that no token issued with the claim is accepted any more. False if
    the user had no claim."""
    from firebase_admin import auth

    user = auth.get_user_by_email(email, app=app)
    claims = dict(user.custom_claims or {})
    had = claims.pop(CLAIM, None) is not None
    auth.set_custom_user_claims(user.uid, claims or None, app=app)
    auth.revoke_refresh_tokens(user.uid, app=app)
    return had


def listing(app) -> list[tuple[str, object]]:
    """(email, claim) of every researcher, by email."""
    from firebase_admin import auth

    found = [
        (user.email or "", (user.custom_claims or {})[CLAIM])
        for user in auth.list_users(app=app).iterate_all()
        if (user.custom_claims or {}).get(CLAIM) not in (None, False)
    ]
    return sorted(found, key=lambda item: item[0])


def describe(claim) -> str:
    return "every experiment" if claim is True else "experiments " + ", ".join(claim)
