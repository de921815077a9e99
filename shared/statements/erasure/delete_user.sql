-- erasure: the users row (id, email, display name). The Firebase Auth account is the app's to delete.
DELETE FROM users WHERE id = :user_id
