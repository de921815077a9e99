-- migrate: a file was applied (in the same transaction as the file itself).
INSERT INTO schema_migrations (version, checksum) VALUES (:version, :checksum)
