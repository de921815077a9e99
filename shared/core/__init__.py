"""What every part stands on, with no product word inside: settings, the database, the Google clients, logs, errors."""
