"""Entry points that Cloud Functions and functions-framework load (--target NAME): one per row
of functions.FUNCTIONS, served as its row says, with the product's one framework-level error
handler. Nothing here connects to anything: clients are made on first use."""

import flask
import functions_framework
from werkzeug.exceptions import HTTPException

from functions import FUNCTIONS
from shared.web.http import MAX_BODY_BYTES, framework_error

# One module-level name per row: functions-framework looks the target up as an attribute of
# this module, and `from main import create_session` works as before.
globals().update({function.name: function.entry_point() for function in FUNCTIONS})

# functions-framework runs this module once per app it makes (create_app, also on Cloud
# Functions), with functions_framework.errorhandler bound to that app's Flask errorhandler.
functions_framework.errorhandler(HTTPException)(framework_error)

# It runs it inside that app's context: werkzeug then caps every read of a body, the
# framework's own included, one byte above the limit so that shared.web.reading, which reads
# one byte more to tell, is the one that refuses (docs/design/body-limits.md).
if flask.has_app_context():
    flask.current_app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES + 1

__all__ = [function.name for function in FUNCTIONS]
