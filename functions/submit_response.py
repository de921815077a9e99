"""submit_response: POST; a response in one of the caller's sessions."""

import functions_framework

from shared import models, responses
from shared.auth import identify
from shared.db import get_engine
from shared.http import endpoint


@functions_framework.http
@endpoint("POST", app_check=True)
def submit_response(request, body):
    caller = identify(request)
    new_response = models.parse(models.NewResponse, body)
    created, response = responses.submit_response(get_engine(), caller, new_response)
    return (201 if created else 200), response.to_json()
