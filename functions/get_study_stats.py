"""get_study_stats: GET [?experimentId=X]; a researcher's figures of each experiment
it may see, computed by shared.research.stats."""

from shared.core.db import get_engine
from shared.web.auth import user_from_header
from shared.web.models import parse_query


def get_study_stats(request, _body):
    from shared.research import researchers, stats  # on first call, not by import main (functions/__init__.py)

    # fresh: `python -m shared.researchers revoke` refuses the old token at once.
    found = researchers.researcher(user_from_header(request, fresh=True))
    query = parse_query(request.args, export=False)
    return 200, stats.study_stats(get_engine(), researchers.scope(found, query.experiments))
