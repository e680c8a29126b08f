"""Event publication: the retained event log and (with the SSE stream) live fan-out."""
