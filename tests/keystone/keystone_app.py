"""Keystone's WSGI application for gunicorn (imported by the Keystone virtualenv's gunicorn).

Keystone parses ``sys.argv`` as its own command line when the application is created, and
refuses gunicorn's arguments; it reads its configuration from OS_KEYSTONE_CONFIG_FILES.
"""
import sys

sys.argv = sys.argv[:1]

from keystone.wsgi.api import application  # noqa: E402,F401
