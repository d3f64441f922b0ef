"""The server runtime: everything that knows gunicorn, and the per-process upkeep."""
