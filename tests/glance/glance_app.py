"""Glance's WSGI application for gunicorn (imported by the Glance virtualenv's gunicorn).

Glance reads ``$OS_GLANCE_CONFIG_DIR/glance-api.conf`` when the module is imported and
ignores the command line, which it would otherwise try to parse as its own.
"""
import sys

sys.argv = sys.argv[:1]

from glance.wsgi.api import application  # noqa: E402,F401
