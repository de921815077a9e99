-- migrate: the files applied so far, with the checksum each had then.
SELECT version, checksum FROM schema_migrations
