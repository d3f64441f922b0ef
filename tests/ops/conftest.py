"""The ops tests use the end-to-end fixtures (real gunicorn servers) too."""
from tests.e2e.conftest import server, start_server  # noqa: F401
