"""Entry points that Cloud Functions and functions-framework load (--target NAME).

Each is defined in functions/; this module only re-exports them, the names of
functions.HTTP_FUNCTIONS and functions.STORAGE_TRIGGER, and gives the app that
functions-framework makes for each the one error handler the product needs at that
level (shared.web.http.framework_error). Nothing here connects to anything: clients are
created on first use.
"""

import functions_framework
from werkzeug.exceptions import HTTPException

from functions import HTTP_FUNCTIONS, STORAGE_TRIGGER
from functions.create_claim_code import create_claim_code
from functions.create_session import create_session
from functions.delete_my_data import delete_my_data
from functions.erase_visitor import erase_visitor
from functions.export_data import export_data
from functions.export_my_data import export_my_data
from functions.get_study_stats import get_study_stats
from functions.get_visitor import get_visitor
from functions.on_upload_finalized import on_upload_finalized
from functions.register import register
from functions.run_maintenance import run_maintenance
from functions.submit_response import submit_response

from shared.web.http import framework_error

# functions-framework runs this module once per app it makes (create_app, also on Cloud
# Functions), with functions_framework.errorhandler bound to that app's Flask errorhandler.
functions_framework.errorhandler(HTTPException)(framework_error)

__all__ = [*HTTP_FUNCTIONS, STORAGE_TRIGGER]
