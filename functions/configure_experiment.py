"""configure_experiment: GET ?experimentId=X answers the experiment's configuration (404 if it
has none; without experimentId, every configuration the researcher may see); POST with the
document replaces it (409 for a change that contradicts what participants have). For
researchers whose claim covers the experiment; a change is recorded in the researchers' trail."""

from shared.core.db import get_engine
from shared.web.auth import user_from_header


def configure_experiment(request, body):
    from shared.research import researchers, trail
    from shared.studies import experiments  # on first call, not by import main (functions/__init__.py)

    # fresh: `python -m shared.researchers revoke` refuses the old token at once.
    found = researchers.researcher(user_from_header(request, fresh=True))
    if request.method == "GET":
        experiment_id = experiments.requested_experiment(request.args)
        if experiment_id is None:
            listed = experiments.configurations(get_engine(), researchers.scope(found))
            return 200, {"experiments": listed}
        researchers.scope(found, [experiment_id])  # 403 outside the researcher's claim
        return 200, experiments.configuration(get_engine(), experiment_id)

    config = experiments.parse_document(body)
    researchers.scope(found, [config.experimentId])

    def recorded(conn):
        trail.Act(found.uid, "configure_experiment", {"experimentId": config.experimentId}).record_in(conn)

    return 200, experiments.configure(get_engine(), config, recorded)
