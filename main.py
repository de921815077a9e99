"""Entry points that Cloud Functions and functions-framework load (--target NAME): one per row
of functions.FUNCTIONS, served as its row says, with the product's one framework-level error
handler. Nothing here connects to anything: clients are made on first use."""

import functions_framework
from werkzeug.exceptions import HTTPException

from functions import FUNCTIONS
from shared.web.http import framework_error

# One module-level name per row: functions-framework looks the target up as an attribute of
# this module, and `from main import create_session` works as before.
globals().update({function.name: function.entry_point() for function in FUNCTIONS})

# functions-framework runs this module once per app it makes (create_app, also on Cloud
# Functions), with functions_framework.errorhandler bound to that app's Flask errorhandler.
functions_framework.errorhandler(HTTPException)(framework_error)

__all__ = [function.name for function in FUNCTIONS]
