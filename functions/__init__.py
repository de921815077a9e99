"""One thin module per deployed function: parse the request, call shared/, answer."""
