"""erase_visitor: POST {"visitorNumber": n}; a researcher (researcher: true) erases
the visitor that holds number n now (a merged number resolves to it), as
delete_my_data would for that visitor. For requests that come by email. The act is
recorded in the researchers' trail in the transaction that deletes the rows."""

from shared.core.db import get_engine
from shared.web import models
from shared.web.auth import user_from_header


def erase_visitor(request, body):
    from shared.research import trail
    from shared.research.researchers import require_every_experiment
    from shared.rights import erasure  # on first call, not by import main (functions/__init__.py)

    # fresh: `python -m shared.researchers revoke` refuses the old token at once.
    found = require_every_experiment(user_from_header(request, fresh=True))
    target = models.parse(models.VisitorToErase, body)

    def recorded(conn, erased):
        details = {"visitorNumber": target.visitorNumber, "erasureId": str(erased.erasure_id)}
        trail.Act(found.uid, "erase_visitor", details).record_in(conn)

    erased = erasure.erase_visitor_number(
        get_engine(), target.visitorNumber, erasure.OtherStores.of_instance(), recorded
    )
    return 202, erased.to_json()
