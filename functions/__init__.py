"""One thin module per deployed function: parse the request, call shared/, answer.

The names below are the functions main.py exports, devtools/serve.py serves and
devtools/deploy.py deploys (firebase.json's hosting rewrites name the HTTP ones too).

Every instance of every function imports main.py, so every function module. All but the
functions a visit calls over and over (create_session, submit_response, get_visitor, whose
shared modules the others use too) import the shared/ modules that only they need when they
are first called: the other functions' cold starts do not pay for them (bench/README.md).
"""

HTTP_FUNCTIONS = ("create_session", "submit_response", "get_visitor", "register", "delete_my_data",
                  "erase_visitor", "export_my_data", "create_claim_code", "get_study_stats", "export_data",
                  "run_maintenance")
STORAGE_TRIGGER = "on_upload_finalized"
# The HTTP functions that erase a visitor (SPEC §11): deployed with their own identity,
# whose database user is a member of visitor_erasure (sql/003_erasure.sql).
ERASURE_FUNCTIONS = ("delete_my_data", "erase_visitor")
# The participants' rights functions (SPEC §11): called once in a visitor's life, so they
# are deployed with fewer instances (RIGHTS_MAX_INSTANCES) and hold fewer connections.
RIGHTS_FUNCTIONS = (*ERASURE_FUNCTIONS, "export_my_data")
# The researchers' functions (SPEC §10): few callers, long answers (exports stream for
# minutes), so deployed with fewer instances and the longest request timeout.
RESEARCH_FUNCTIONS = ("get_study_stats", "export_data")
# Functions called rarely: the rights functions, create_claim_code (once per move to another
# device, SPEC §13), the researchers' functions and run_maintenance (Cloud Scheduler's, SPEC §12).
# Deployed with RIGHTS_MAX_INSTANCES instances at most.
FEW_INSTANCES_FUNCTIONS = (*RIGHTS_FUNCTIONS, "create_claim_code", *RESEARCH_FUNCTIONS, "run_maintenance")
# The private function (SPEC §12): deployed --no-allow-unauthenticated, invoked only by the
# Cloud Scheduler job's service account; it erases (retention, resuming withdrawals), so it
# runs with a database user of visitor_erasure. One instance: runs are minutes apart.
PRIVATE_FUNCTIONS = ("run_maintenance",)
# The visitor-facing HTTP functions, which check App Check when APP_CHECK is on (SPEC §12):
# not the researchers' (called with their ID tokens from the researcher page), run_maintenance
# (Cloud Scheduler's) nor the trigger.
APP_CHECK_FUNCTIONS = ("create_session", "submit_response", "get_visitor", "register", "create_claim_code",
                       "delete_my_data", "export_my_data")
