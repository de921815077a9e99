"""devtools.serve's app (every function) with firebase-admin reading Google's endpoints from
the local server at GOOGLE_ENDPOINTS_URL (devtools/google_endpoints.py): ID tokens verified as in
production, RS256 signatures and Auth API lookups, with no internet. Bench only (bench/registered.py);
run with gunicorn: `bench.registered_server:app`, FIREBASE_AUTH_EMULATOR_HOST empty."""

import os

from devtools.google_endpoints import point_firebase_admin_at

point_firebase_admin_at(os.environ["GOOGLE_ENDPOINTS_URL"])

from devtools.serve import app  # noqa: E402,F401
