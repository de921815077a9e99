"""delete_my_data: POST; the caller withdraws, and everything stored of it is erased.

A guest (X-Guest-Key) or any Firebase user (anonymous included). Answers 202
with the erasure: `done`, or `pending` while Firestore or Storage could not be
reached (the rows are gone already; `python -m shared.erasure resume` finishes it).
"""

from shared.core.db import get_engine
from shared.web.auth import identify


def delete_my_data(request, _body):
    from shared.rights import erasure  # on first call, not by import main (functions/__init__.py)

    # fresh: a withdrawal erases for good, so no revoked token may ask for one.
    caller = identify(request, fresh=True)
    erased = erasure.erase_caller(get_engine(), caller, erasure.OtherStores.of_instance())
    return 202, erased.to_json()
