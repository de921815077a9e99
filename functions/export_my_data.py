"""export_my_data: GET; the caller's own data (access and portability), one
JSON document streamed as it is read (shared.rights.access). An error once the document has
begun cannot change the status any more: it ends the document early, unfinished
(shared.web.http.Streamed)."""

from shared.core.db import get_engine
from shared.web.auth import identify
from shared.web.http import Streamed

DOWNLOAD = {"Content-Disposition": 'attachment; filename="my-data.json"'}


def export_my_data(request, _body):
    from shared.rights import access  # on first call, not by import main (functions/__init__.py)

    # fresh: the answer is everything stored of the caller, so no revoked token may have it.
    caller = identify(request, fresh=True)
    return Streamed(access.export_my_data(get_engine(), caller), headers=DOWNLOAD)
