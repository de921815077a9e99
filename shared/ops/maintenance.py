"""What run_maintenance does on Cloud Scheduler's schedule (and `make maintenance` once):
resume pending erasures, retention, forget expired windows; and, on its daily job, the
consistency audit without repair (docs/design/maintenance.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shared.core.db import statement, transaction
from shared.core.errors import GuestClaimed, NotFound
from shared.core.logs import get_logger
from shared.rights import erasure
from shared.visitors.guest_limit import WINDOW_SECONDS

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

log = get_logger("maintenance")

# Guests a run erases at most, so that one run ends well within the function's timeout
# (each erasure is a transaction and its Firestore and Storage parts);
# the next run goes on where this one stopped.
RETENTION_BATCH = 500


@dataclass
class Retention:
    """What retention did in one run."""

    days: int | None
    erased: int = 0  # guests erased (their PostgreSQL part committed)
    pending: int = 0  # of those, erasures whose Firestore or Storage part is still pending
    kept: int = 0  # candidates found in use again once locked (a new session, response or upload)
    more: bool = False  # the batch was full: the next run goes on

    def to_json(self) -> dict[str, Any]:
        return {"days": self.days, "erased": self.erased, "pending": self.pending, "kept": self.kept, "more": self.more}


@dataclass
class Report:
    """One maintenance run, as run_maintenance answers it."""

    resumed: erasure.Resumed
    retention: Retention
    expired_addresses: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "erasures": {"completed": self.resumed.completed, "stillPending": self.resumed.still_pending},
            "retention": self.retention.to_json(),
            "guestLimit": {"expiredAddresses": self.expired_addresses},
        }


def run(
    engine: Engine, stores: erasure.OtherStores, retention_days: int | None, batch: int = RETENTION_BATCH
) -> Report:
    """Resume pending erasures, apply retention (when `retention_days` is set), forget expired windows."""
    resumed = erasure.resume(engine, stores)
    retention = apply_retention(engine, stores, retention_days, batch) if retention_days else Retention(None)
    expired = forget_expired_windows(engine)
    report = Report(resumed, retention, expired)
    log.info("maintenance run", extra={"fields": report.to_json()})
    return report


def daily_audit(engine: Engine, storage_client, firestore_client, bucket: str) -> dict[str, Any]:
    """The consistency audit without --repair (run_maintenance?task=audit, Cloud Scheduler's daily
    job): its figures, also logged. It mends nothing, so it needs no upload ticket key; a
    disagreement is for an operator to look at and mend with `make audit ARGS=--repair`."""
    from shared.ops.audit import Audit
    from shared.visitors.uploads import TicketCheck

    report = Audit(engine, storage_client, firestore_client, bucket, TicketCheck("off")).run()
    figures = {"found": report.found, "checked": report.checked, "disagreements": report.left()}
    if report.left():
        log.warning("the audit found disagreements between the stores", extra={"fields": figures})
    return figures


def apply_retention(engine: Engine, stores: erasure.OtherStores, days: int, batch: int = RETENTION_BATCH) -> Retention:
    """Erase the empty, unclaimed guests inactive for `days` days, oldest first, at most `batch`."""
    done = Retention(days)
    tried: list[str] = []
    while True:
        if done.erased >= batch:
            done.more = True
            break
        try:
            with transaction(engine) as conn:
                guest = conn.execute(
                    statement("maintenance/retention_next_guest"), {"days": days, "tried": tried}
                ).first()
                if guest is None:
                    break
                tried.append(str(guest.id))

                def still_empty(conn, _session_ids, guest_id=str(guest.id)) -> bool:
                    row = conn.execute(
                        statement("maintenance/retention_still_empty"), {"guest_id": guest_id, "days": days}
                    ).one()
                    return row.still_empty

                made = erasure.erase_rows_in(
                    conn, erasure.Target(key_hash=bytes(guest.key_hash)), "retention", still_eligible=still_empty
                )
        except (erasure.NotEligible, NotFound, GuestClaimed):
            done.kept += 1  # in use again, claimed or erased meanwhile: nothing was changed
            continue
        erasure.log_erased(made)
        done.erased += 1
        if erasure.finish_or_pending(engine, made, stores).status == "pending":
            done.pending += 1
    return done


def forget_expired_windows(engine: Engine) -> int:
    """Delete the guest-creation windows that are over; how many."""
    with transaction(engine) as conn:
        return conn.execute(
            statement("maintenance/guest_limit_forget_expired"), {"window_seconds": WINDOW_SECONDS}
        ).rowcount
