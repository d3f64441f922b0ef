"""The per-worker cache of validated tokens: lifetime, expiry, revocation, what is never cached."""
import datetime

import pytest

from imagedata.db import database
from imagedata.models import Token, utcnow
from imagedata.service import tokens
from imagedata.service.tokens import caller_for_token, hash_token, revoke_token


@pytest.fixture(autouse=True)
def empty_cache():
    tokens.CACHE.clear()
    yield
    tokens.CACHE.clear()


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(tokens.time, "monotonic", fake)
    return fake


def _revoke_behind_the_cache(secret):
    """Revoke in the database only, as another process (the CLI) does."""
    Token.update(revoked=True).where(Token.token_hash == hash_token(secret)).execute()


def test_a_validated_token_is_served_from_the_cache_until_its_lifetime_ends(app, make_token, clock):
    secret = make_token("p1")
    with database.connection_context():
        first = caller_for_token(secret)
        _revoke_behind_the_cache(secret)
        clock.now += tokens.TOKEN_CACHE_SECONDS - 0.1
        assert caller_for_token(secret) == first  # still within the documented lifetime
        clock.now += 0.2
        assert caller_for_token(secret) is None  # looked up again: revoked


def test_the_cache_never_outlives_the_token(app, make_token, clock):
    secret = make_token("p1", expires_in=2)
    with database.connection_context():
        assert caller_for_token(secret) is not None
        entry = tokens.CACHE.entries[hash_token(secret)]
        assert entry[1] - clock.now <= 2
        Token.update(expires_at=utcnow() - datetime.timedelta(seconds=1)).where(
            Token.token_hash == hash_token(secret)).execute()
        clock.now += 2.01
        assert caller_for_token(secret) is None


def test_revoking_in_this_process_takes_effect_at_once(app, make_token, clock):
    secret = make_token("p1")
    with database.connection_context():
        assert caller_for_token(secret) is not None
        row = Token.get(Token.token_hash == hash_token(secret))
        assert revoke_token(row.token_id)
        assert caller_for_token(secret) is None


def test_unknown_and_refused_tokens_are_not_cached(app, make_token):
    secret = make_token("p1")
    with database.connection_context():
        _revoke_behind_the_cache(secret)
        assert caller_for_token(secret) is None
        assert caller_for_token("idt_" + "x" * 43) is None
    assert tokens.CACHE.entries == {}


def test_the_cache_is_bounded():
    cache = tokens.TokenCache(seconds=60, size=3)
    for n in range(5):
        cache.put(f"h{n}", object(), None)
    assert list(cache.entries) == ["h2", "h3", "h4"]
