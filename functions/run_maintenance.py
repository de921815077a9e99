"""run_maintenance: POST, by Cloud Scheduler only (deployed private); resumes pending
erasures, applies retention (GUEST_RETENTION_DAYS) and forgets expired guest-creation
windows, and answers what it did. With ?task=audit (the daily job) it runs the consistency
audit without repair instead, and answers its figures; with ?task=deliveries (every minute)
it makes the Prolific deliveries that are due (SPEC §14.5)."""

from shared.core import config
from shared.core.db import get_engine
from shared.core.errors import InvalidArgument

TASKS = ("audit", "deliveries")


def run_maintenance(request, _body):
    from shared.ops import maintenance
    from shared.rights import erasure  # on first call, not by import main (functions/__init__.py)
    from shared.web.invoker import require_invoker

    require_invoker(request)
    task = request.args.get("task")
    if set(request.args) - {"task"} or (task is not None and task not in TASKS):
        raise InvalidArgument("run_maintenance takes one query parameter, task=audit or task=deliveries, or none.")
    if task == "audit":
        from shared.core.stores import firestore_client, storage_client

        figures = maintenance.daily_audit(
            get_engine(), storage_client(), firestore_client(), config.required_storage_bucket()
        )
        return 200, {"audit": figures}
    if task == "deliveries":
        from shared.studies import deliveries

        return 200, {"deliveries": deliveries.deliver_due(get_engine(), deliveries.Prolific.from_settings()).to_json()}
    report = maintenance.run(get_engine(), erasure.OtherStores.of_instance(), config.guest_retention_days())
    return 200, report.to_json()
