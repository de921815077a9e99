"""One thin module per deployed function: parse the request, call shared/, answer.

The names below are the functions main.py exports, devtools/serve.py serves and
devtools/deploy.py deploys (firebase.json's hosting rewrites name the HTTP ones too).
"""

HTTP_FUNCTIONS = ("create_session", "submit_response", "get_visitor", "register", "export_my_data")
STORAGE_TRIGGER = "on_upload_finalized"
