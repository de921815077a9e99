"""Entry points that Cloud Functions and functions-framework load (--target NAME).

Each is a row of functions.FUNCTIONS, whose handler is defined in functions/<name>.py;
this module only exports each under its name, served as its row says
(functions.Function.entry_point: functions-framework's signature type and, for an HTTP
function, shared.web.http.endpoint with the row's method and App Check), and gives the app
that functions-framework makes for each the one error handler the product needs at that
level (shared.web.http.framework_error). Nothing here connects to anything: clients are
created on first use.

    from main import create_session   # what functions-framework --target create_session serves
"""

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
