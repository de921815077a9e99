-- on_upload_finalized: a transaction lock on the visitor's number (the two-key form, whose key
-- space no other lock of the product uses; hashtext may collide, which only serialises two
-- visitors' uploads). The uploads of one visitor then write Firestore in the order their rows
-- commit; uploads/latest.sql, a statement of its own, sees the rows committed while it waited.
SELECT pg_advisory_xact_lock(1734567, hashtext(CAST(:visitor_number AS text)))
