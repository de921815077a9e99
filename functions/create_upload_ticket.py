"""create_upload_ticket: POST; a ticket that lets the caller's next upload into its session be
recorded (docs/api.md, docs/design/upload-tickets.md)."""

from shared.core import config
from shared.core.db import get_engine
from shared.web import models
from shared.web.auth import identify


def create_upload_ticket(request, body):
    from shared.visitors import upload_tickets  # on first call, not by import main (functions/__init__.py)

    caller = identify(request)
    asked = models.parse(models.UploadTicketRequest, body)
    ticket = upload_tickets.create_upload_ticket(
        get_engine(),
        caller,
        asked.sessionId,
        asked.name,
        key=config.upload_ticket_key(),
        ttl_seconds=config.upload_ticket_ttl_seconds(),
    )
    return 201, ticket.to_json()
