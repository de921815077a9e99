"""export_my_data: GET; the caller's own data (SPEC §11, access and portability), one
JSON document streamed as it is read (shared.access). An error once the document has
begun cannot change the status any more: it ends the document early, unfinished
(shared.http.Streamed)."""

import functions_framework

from shared.auth import identify
from shared.db import get_engine
from shared.http import Streamed, endpoint

DOWNLOAD = {"Content-Disposition": 'attachment; filename="my-data.json"'}


@functions_framework.http
@endpoint("GET", app_check=True)
def export_my_data(request, _body):
    from shared import access, uploads  # on first call, not by import main (functions/__init__.py)

    # fresh: the answer is everything stored of the caller, so no revoked token may have it.
    caller = identify(request, fresh=True)
    return Streamed(access.export_my_data(get_engine(), uploads.firestore_client(), caller), headers=DOWNLOAD)
