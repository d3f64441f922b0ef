"""Keystone tokens (``IMAGEDATA_AUTH=keystone``): keystonemiddleware's auth_token in front of the app.

The middleware validates ``X-Auth-Token`` (and Nova's ``X-Service-Token``) against Keystone v3,
caches what it learnt and sets the ``X-Identity-Status``, ``X-User-Id``, ``X-Project-Id`` and
``X-Roles`` headers that ``imagedata.auth`` turns into a ``Caller``. imagedata makes every
decision itself (``delay_auth_decision`` is always on), so its 401 and 503 answers are rendered
like every other error; the middleware adds ``WWW-Authenticate: Keystone uri="..."`` to each 401.

Needs the ``keystone`` extra (``pip install 'imagedata[keystone]'``).
"""
from __future__ import annotations

import collections
import configparser
import logging
import os
import threading
from time import monotonic

from keystoneauth1 import exceptions as ksa_exceptions
from keystonemiddleware import auth_token
from oslo_config import cfg

from imagedata.auth.request import KEYSTONE_UNREACHABLE_KEY
from imagedata.config import ConfigError


SECTION = "keystone_authtoken"
# The environ key of the worker's token cache (keystonemiddleware's ``cache`` option).
CACHE_KEY = "imagedata.auth.keystone_token_cache"
REQUIRED_OPTIONS = ("auth_type", "auth_url", "www_authenticate_uri")
# Bounded waits when Keystone hangs: at most two tries of 3 s each (keystonemiddleware's
# own defaults are no timeout at all and three retries). The operator's file wins.
BOUNDED_DEFAULTS = {"http_connect_timeout": 3, "http_request_max_retries": 1}
# What keystonemiddleware reports when it cannot get an answer from Keystone. It catches
# ConnectFailure itself but lets ConnectTimeout (a Keystone that accepts and never answers)
# escape as a 500: ConnectionError covers both, and TLS failures.
UNREACHABLE_ERRORS = (ksa_exceptions.ConnectionError, ksa_exceptions.DiscoveryFailure,
                      ksa_exceptions.RequestTimeout, ksa_exceptions.EndpointNotFound,
                      auth_token.ServiceError)


class KeystoneUnreachable(Exception):
    """Keystone could not be asked whether a token is valid."""


class TokenCache:
    """The worker's cache of validated tokens, shared by all its threads (memcache's get/set).

    keystonemiddleware's own in-process cache is one dict per concurrently used client, so a
    token cached by one request thread is unknown to the next; this one is a single bounded
    LRU per worker. With ``memcached_servers`` set, memcached is used instead.
    """

    def __init__(self, max_entries: int = 10000):
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._items: collections.OrderedDict = collections.OrderedDict()

    def get(self, key: str):
        """The value stored under ``key``, or None when absent or expired."""
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            expires_at, value = item
            if expires_at <= monotonic():
                del self._items[key]
                return None
            self._items.move_to_end(key)
            return value

    def set(self, key: str, value, time: float = 0, **_ignored) -> bool:
        """Store ``value`` for ``time`` seconds (0: until evicted)."""
        expires_at = monotonic() + time if time else float("inf")
        with self._lock:
            self._items[key] = (expires_at, value)
            self._items.move_to_end(key)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)
        return True


class AuthToken(auth_token.AuthProtocol):
    """auth_token that tells "Keystone cannot be reached" apart from "the token is invalid"."""

    def __init__(self, app, conf: dict, token_cache: TokenCache | None):
        super().__init__(app, conf)
        self._worker_cache = token_cache

    def __call__(self, environ, start_response):
        if self._worker_cache is not None:
            environ[CACHE_KEY] = self._worker_cache
        return super().__call__(environ, start_response)

    def fetch_token(self, token, **kwargs):
        """As auth_token's, but an unreachable Keystone raises KeystoneUnreachable."""
        try:
            return super().fetch_token(token, **kwargs)
        except auth_token.InvalidToken as exc:
            # With delay_auth_decision, auth_token turns "Keystone unavailable" into
            # InvalidToken (a 401); the error it caught is kept as the context.
            if isinstance(exc.__context__, UNREACHABLE_ERRORS):
                raise KeystoneUnreachable(str(exc.__context__)) from exc
            raise
        except UNREACHABLE_ERRORS as exc:
            raise KeystoneUnreachable(str(exc)) from exc

    def process_request(self, request):
        """Validate the tokens; when Keystone cannot answer, mark the request for a 503."""
        try:
            response = super().process_request(request)
        except KeystoneUnreachable as exc:
            # The identity headers a client sent were removed before any lookup.
            request.environ[KEYSTONE_UNREACHABLE_KEY] = str(exc) or exc.__class__.__name__
            response = None
        # auth_token sets the headers a token has no value for (OpenStack-System-Scope of a
        # project token, X-Domain-Id...) to None; WSGI headers are strings.
        for key in [k for k, v in request.environ.items() if v is None and k.startswith("HTTP_")]:
            del request.environ[key]
        return response


def read_section(path: str) -> dict[str, str]:
    """The ``[keystone_authtoken]`` options of ``path``, checked for what imagedata needs."""
    parser = configparser.RawConfigParser(strict=False)
    try:
        with open(path, encoding="utf-8") as f:
            parser.read_file(f)
    except OSError as exc:
        raise ConfigError(f"IMAGEDATA_KEYSTONE_CONFIG: cannot read {path}: {exc.strerror}") from None
    except (configparser.Error, UnicodeDecodeError) as exc:
        raise ConfigError(f"IMAGEDATA_KEYSTONE_CONFIG: {path} is not an ini file: {exc}") from None
    if not parser.has_section(SECTION):
        raise ConfigError(f"IMAGEDATA_KEYSTONE_CONFIG: {path} has no [{SECTION}] section")
    options = {key: value.strip() for key, value in parser.items(SECTION)}
    missing = [name for name in REQUIRED_OPTIONS if not options.get(name)]
    if missing:
        raise ConfigError(f"IMAGEDATA_KEYSTONE_CONFIG: [{SECTION}] in {path} must set {', '.join(missing)}")
    return options


def middleware_conf(path: str, options: dict[str, str]) -> tuple[dict, bool]:
    """auth_token's conf: the file through oslo.config, plus imagedata's overrides.

    Returns the conf and whether the worker cache is used (no memcached, no env cache).
    """
    oslo_conf = cfg.ConfigOpts()
    try:
        oslo_conf(args=[], project="imagedata", default_config_files=[os.path.abspath(path)],
                  default_config_dirs=[])
    except cfg.Error as exc:
        raise ConfigError(f"IMAGEDATA_KEYSTONE_CONFIG: {path}: {exc}") from None
    # Keys given here override the file (keystonemiddleware's "paste overrides").
    conf = {"oslo_config_config": oslo_conf, "delay_auth_decision": True}
    conf.update({key: value for key, value in BOUNDED_DEFAULTS.items() if key not in options})
    own_cache = not options.get("memcached_servers") and not options.get("cache")
    if own_cache:
        conf["cache"] = CACHE_KEY
    return conf, own_cache


def wrap_auth_token(app, path: str) -> AuthToken:
    """Put auth_token, configured from the file at ``path``, in front of the WSGI ``app``."""
    options = read_section(path)
    conf, own_cache = middleware_conf(path, options)
    quiet_middleware_logs()
    try:
        return AuthToken(app, conf, TokenCache() if own_cache else None)
    except (cfg.Error, auth_token.ConfigurationError, ksa_exceptions.ClientException, ValueError) as exc:
        raise ConfigError(f"IMAGEDATA_KEYSTONE_CONFIG: {path}: {exc}") from None


def quiet_middleware_logs() -> None:
    """keystonemiddleware logs through imagedata's handler, warnings and worse only.

    It logs every rejected token at INFO; the answer (401) already says so.
    """
    ours = logging.getLogger("imagedata")
    theirs = logging.getLogger("keystonemiddleware")
    if not theirs.handlers and ours.handlers:
        for handler in ours.handlers:
            theirs.addHandler(handler)
        theirs.propagate = False
    theirs.setLevel(max(ours.getEffectiveLevel(), logging.WARNING))
