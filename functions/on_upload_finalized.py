"""on_upload_finalized: CloudEvent google.cloud.storage.object.v1.finalized.

Checks an upload's ticket (UPLOAD_TICKETS), tags it with its visitor's metadata and records
it in Firestore (shared.visitors.uploads). Returning acknowledges the event; raising
(uploads.RetryEvent when a dependency is unavailable) makes the platform redeliver it.
"""

from shared.core import config
from shared.core.db import get_engine
from shared.core.logs import get_logger

log = get_logger("on_upload_finalized")


def on_upload_finalized(cloud_event):
    from shared.core import stores
    from shared.visitors import uploads  # on first call, not by import main (functions/__init__.py)

    attributes = cloud_event.get_attributes()
    data = cloud_event.get_data()
    fields = {"eventId": attributes.get("id"), "subject": attributes.get("subject")}
    mode = config.upload_tickets_mode()
    tickets = uploads.TicketCheck(mode, None if mode == "off" else config.upload_ticket_key())
    try:
        outcome = uploads.record_upload(
            attributes,
            data,
            engine=get_engine(),
            storage_client=stores.storage_client(),
            firestore_client=stores.firestore_client(),
            tickets=tickets,
            max_age_seconds=config.upload_event_max_age_seconds(),
            expected_bucket=config.storage_bucket(),
        )
    except uploads.RetryEvent as retry:
        log.warning("upload not recorded, the event will be retried: %s", retry, extra={"fields": fields})
        raise
    fields.update(status=outcome.status, uploadId=outcome.upload_id, visitorNumber=outcome.visitor_number)
    if outcome.status == "refused":
        log.warning("upload refused: %s", outcome.reason, extra={"fields": fields})
    elif outcome.status == "ignored":
        (log.warning if outcome.warn else log.info)(
            "upload event acknowledged without action: %s", outcome.reason, extra={"fields": fields}
        )
    else:
        log.info("upload %s: %s", outcome.status, outcome.reason, extra={"fields": fields})
