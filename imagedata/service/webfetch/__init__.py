"""Fetching image data from a URL safely: the SSRF rules, resumable reading, clear errors.

``open_url(url, policy, idle_timeout, max_bytes)`` checks the URL against a
``FetchPolicy`` (built from the settings with ``FetchPolicy.from_settings``), connects only
to addresses it checked, and returns a ``RemoteSource`` to read the data from. Every error
is a ``FetchError`` whose message names the reason; URLs in messages and logs go through
``redact_url``. No Flask here: the import API and its tasks build on this.
"""
from imagedata.service.webfetch.errors import (ConnectionLost, FetchError, HostNotFound, IdleTimeout, RemoteHTTPError,
                                               SourceCut, SourceRestarted, SourceTooLarge, SourceUnstable,
                                               TLSFailed, TooManyRedirects, URLRefused)
from imagedata.service.webfetch.policy import FetchPolicy, Target
from imagedata.service.webfetch.redact import redact_url
from imagedata.service.webfetch.source import RemoteSource, open_url

__all__ = [
    "ConnectionLost", "FetchError", "FetchPolicy", "HostNotFound", "IdleTimeout", "RemoteHTTPError", "RemoteSource",
    "SourceCut", "SourceRestarted", "SourceTooLarge", "SourceUnstable", "TLSFailed", "Target", "TooManyRedirects",
    "URLRefused", "open_url", "redact_url",
]
