"""exclude_session: POST {"sessionId": ...}; a researcher whose claim covers the session's
experiment marks it `excluded`: it frees its participant's place and is counted apart. The
researcher page's exclusion; `python -m shared.experiments exclude` does the same next to the
database. Recorded in the researchers' trail in the transaction that makes it."""

from shared.core.db import get_engine
from shared.web.auth import user_from_header


def exclude_session(request, body):
    from shared.research import researchers, trail
    from shared.studies import experiments  # on first call, not by import main (functions/__init__.py)

    found = researchers.researcher(user_from_header(request, fresh=True))
    session_id = experiments.session_to_exclude(body)

    def allowed(experiment_id):
        researchers.scope(found, [experiment_id])  # 403 outside the researcher's claim

    def recorded(conn, experiment_id):
        details = {"experimentId": experiment_id, "sessionId": str(session_id)}
        trail.Act(found.uid, "exclude_session", details).record_in(conn)

    return 200, experiments.exclude(get_engine(), session_id, allowed, recorded)
