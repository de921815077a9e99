"""get_researcher_actions: GET; the researchers' trail (exports, erasures), newest first, the
latest 100, for a researcher with `researcher: true` (shared.research.trail)."""

from shared.core.db import get_engine
from shared.core.errors import InvalidArgument
from shared.web.auth import user_from_header


def get_researcher_actions(request, _body):
    from shared.research import researchers, trail  # on first call, not by import main (functions/__init__.py)

    # fresh: `python -m shared.researchers revoke` refuses the old token at once.
    researchers.require_every_experiment(user_from_header(request, fresh=True))
    if request.args:
        raise InvalidArgument(f"Unknown query parameter {sorted(request.args)[0]!r}; this function takes none.")
    return 200, {"actions": trail.latest(get_engine()), "limit": trail.LATEST}
