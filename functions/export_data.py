"""export_data: GET [?experimentId=X&from=T&to=T&format=zip|csv|jsonl&table=T]; a
study's data for a researcher, streamed as it is read (shared.research.export).
An error once the download has begun ends it early (shared.web.http.Streamed).
The act is recorded in the researchers' trail before the download begins."""

from shared.core.db import get_engine
from shared.web.auth import user_from_header
from shared.web.http import Streamed
from shared.web.models import parse_query


def export_data(request, _body):
    from shared.research import export, researchers, trail  # on first call, not by import main (functions/__init__.py)

    # fresh: `python -m shared.researchers revoke` refuses the old token at once.
    found = researchers.researcher(user_from_header(request, fresh=True))
    query = parse_query(request.args, export=True)
    scope = researchers.scope(found, query.experiments)
    trail.Act(found.uid, "export_data", export.trail_details(scope, query)).record(get_engine())
    made = export.export_data(get_engine(), scope, query)
    return Streamed(
        made.chunks, mimetype=made.mimetype, headers={"Content-Disposition": f'attachment; filename="{made.filename}"'}
    )
