"""run_maintenance: POST, by Cloud Scheduler only (deployed private); resumes pending
erasures, applies retention (GUEST_RETENTION_DAYS) and forgets expired guest-creation
windows, and answers what it did."""

from shared.core import config
from shared.core.db import get_engine


def run_maintenance(request, _body):
    from shared.ops import maintenance
    from shared.rights import erasure  # on first call, not by import main (functions/__init__.py)
    from shared.web.invoker import require_invoker

    require_invoker(request)
    report = maintenance.run(get_engine(), erasure.OtherStores.of_instance(), config.guest_retention_days())
    return 200, report.to_json()
