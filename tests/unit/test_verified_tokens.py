"""gateway.auth.VerifiedTokens: a token's signature is checked once, its expiry every time."""
import time

import jwt
import pytest

from gateway.auth import ISSUER, VerifiedTokens

SECRET = "s" * 32


def token(secret=SECRET, ttl=60, **claims):
    now = int(time.time())
    return jwt.encode({"iss": ISSUER, "sub": "u1", "sid": "s1", "iat": now, "exp": now + ttl, **claims}, secret,
                      algorithm="HS256")


def test_a_token_is_decoded_once_then_answered_from_the_cache(monkeypatch):
    tokens, decoded = VerifiedTokens(), []
    real_decode = jwt.decode
    monkeypatch.setattr(jwt, "decode", lambda *args, **kwargs: decoded.append(args[0]) or real_decode(*args, **kwargs))
    presented = token()
    assert tokens.decode(presented, SECRET)["sub"] == "u1"
    assert tokens.decode(presented, SECRET)["sid"] == "s1"
    assert decoded == [presented]


def test_another_secret_or_a_forged_signature_is_checked_not_cached():
    tokens = VerifiedTokens()
    presented = token()
    tokens.decode(presented, SECRET)
    with pytest.raises(jwt.InvalidSignatureError):
        tokens.decode(presented, "another secret of enough length!")
    with pytest.raises(jwt.InvalidSignatureError):
        tokens.decode(presented[:-2] + ("AA" if not presented.endswith("AA") else "BB"), SECRET)


def test_a_cached_token_that_expired_is_refused_as_expired():
    tokens = VerifiedTokens()
    presented = token(ttl=1)
    tokens.decode(presented, SECRET)
    time.sleep(2.1)  # past its exp, a whole second
    with pytest.raises(jwt.ExpiredSignatureError):
        tokens.decode(presented, SECRET)


def test_the_cache_keeps_at_most_its_size():
    tokens = VerifiedTokens(size=3)
    for n in range(5):
        tokens.decode(token(n=n), SECRET)
    assert len(tokens._claims) == 3
