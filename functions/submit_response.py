"""submit_response: POST; a response in one of the caller's sessions."""

from shared.core.db import get_engine
from shared.visitors import responses
from shared.web import models
from shared.web.auth import identify


def submit_response(request, body):
    caller = identify(request)
    new_response = models.parse(models.NewResponse, body)
    created, response = responses.submit_response(get_engine(), caller, new_response)
    return (201 if created else 200), response.to_json()
