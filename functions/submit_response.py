"""submit_response: POST; a response, or a batch of them (`responses`), in one of the caller's sessions."""

from shared.core.db import get_engine
from shared.core.errors import InvalidArgument
from shared.visitors import responses
from shared.web import models
from shared.web.auth import identify

# The single form's own fields: with `responses` as well, a body is both forms at once.
SINGLE_FIELDS = ("responseId", "level", "data")


def submit_response(request, body):
    caller = identify(request)
    if isinstance(body, dict) and "responses" in body:
        created, stored = responses.submit_responses(get_engine(), caller, _batch(body))
        return (201 if created else 200), {"responses": [response.to_json() for response in stored]}
    new_response = models.parse(models.NewResponse, body)
    created, response = responses.submit_response(get_engine(), caller, new_response)
    return (201 if created else 200), response.to_json()


def _batch(body: dict):
    """The batch form; a refused item is named by its `index` in the error."""
    both = [name for name in SINGLE_FIELDS if name in body]
    if both:
        raise InvalidArgument(
            f"Send either one response (data) or a batch (responses), not both: remove {', '.join(both)} or responses."
        )
    try:
        return models.parse(models.NewResponses, body)
    except InvalidArgument as error:
        from shared.web.bodies import MAX_BATCH_RESPONSES

        items = body["responses"]
        if isinstance(items, list) and len(items) <= MAX_BATCH_RESPONSES:
            for index, item in enumerate(items):
                _check_item(index, item)
        raise error from None


def _check_item(index: int, item) -> None:
    if not isinstance(item, dict):
        raise InvalidArgument(f"responses[{index}]: must be a JSON object (responseId, level, data).", index=index)
    try:
        models.parse(models.ResponseItem, item)
    except InvalidArgument as error:
        raise InvalidArgument(f"responses[{index}]: {error.message}", index=index) from None
