"""export_data: GET [?experimentId=X&from=T&to=T&format=zip|csv|jsonl&table=T]; a
study's data for a researcher, streamed as it is read (shared.research.export).
An error once the download has begun ends it early (shared.web.http.Streamed)."""

from shared.core.db import get_engine
from shared.web.auth import user_from_header
from shared.web.http import Streamed
from shared.web.models import parse_query


def export_data(request, _body):
    from shared.core import stores
    from shared.research import export, researchers  # on first call, not by import main (functions/__init__.py)

    # fresh: `python -m shared.researchers revoke` refuses the old token at once.
    found = researchers.researcher(user_from_header(request, fresh=True))
    query = parse_query(request.args, export=True)
    made = export.export_data(
        get_engine(), stores.firestore_client(), researchers.scope(found, query.experiments), query
    )
    return Streamed(
        made.chunks, mimetype=made.mimetype, headers={"Content-Disposition": f'attachment; filename="{made.filename}"'}
    )
