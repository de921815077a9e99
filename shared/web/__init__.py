"""The HTTP edge: answers and errors, callers (tokens, guest keys, App Check, the scheduler),
request bodies and their limits."""
