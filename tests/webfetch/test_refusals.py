"""SSRF: what a default-configured fetcher refuses, proven by the servers' own connection logs.

The origins listen on loopback, where an attacker would aim. A default policy (no
IMAGEDATA_WEB_DOWNLOAD_ALLOWED_HOSTS) is given the origin's port as an allowed port, so
that the address rule, not the port rule, is what refuses.
"""
from __future__ import annotations


import pytest

from imagedata.config import load_settings
from imagedata.service.webfetch import FetchPolicy, TooManyRedirects, URLRefused, open_url
from tests.webfetch.conftest import allowing, read_all


@pytest.fixture
def v4(origins, data):
    """The origin on 127.0.0.1."""
    return origins(data[:1024])


@pytest.fixture
def v6(origins, data):
    """An origin on [::1], or None where this machine has no IPv6 loopback."""
    try:
        return origins(data[:1024], host="::1")
    except OSError:
        return None


def refuse(url: str, policy: FetchPolicy) -> URLRefused:
    """The refusal of ``url`` (the test fails if it is fetched)."""
    with pytest.raises(URLRefused) as caught:
        open_url(url, policy, idle_timeout=2)
    return caught.value


def test_the_connection_log_sees_a_fetch(v4):
    """Control: the same origin, once listed, is fetched and logs the connection."""
    with open_url(v4.url(), allowing(v4), idle_timeout=2) as source:
        assert len(read_all(source)[0]) == 1024
    assert len(v4.connections) == 1


@pytest.mark.parametrize("host,rule,why", [
    ("127.0.0.1", "address", "127.0.0.1 is a loopback address (127.0.0.0/8)"),
    ("2130706433", "host", "spells an IPv4 address in a non-standard form"),
    ("0x7f000001", "host", "spells an IPv4 address in a non-standard form"),
    ("0177.0.0.1", "host", "spells an IPv4 address in a non-standard form"),
    ("127.1", "host", "spells an IPv4 address in a non-standard form"),
    ("127.0.0.1.", "host", "spells an IPv4 address in a non-standard form"),
    ("0", "host", "spells an IPv4 address in a non-standard form"),
    ("0.0.0.0", "address", "an unspecified ('this network') address"),
    ("localhost", "address", "localhost resolves to "),  # the real resolver, through /etc/hosts
    ("LocalHost.", "address", "localhost resolves to "),
    ("[::ffff:127.0.0.1]", "address", "an IPv4-mapped IPv6 address (::ffff:0:0/96)"),
    ("[::127.0.0.1]", "address", "an IPv4-compatible IPv6 address (::/96)"),
    ("[::1]", "address", "::1 is a loopback address (::1/128)"),
    ("[::]", "address", ":: is the unspecified address (::/128)"),
    ("[0:0:0:0:0:ffff:7f00:1]", "address", "an IPv4-mapped IPv6 address"),
])
def test_loopback_in_every_spelling_is_refused_without_connecting(v4, v6, host, rule, why):
    policy = FetchPolicy(ports=(v4.port,) + ((v6.port,) if v6 else ()))
    for port in {v4.port, v6.port if v6 else v4.port}:
        error = refuse(f"http://{host}:{port}/image", policy)
        assert (error.rule, error.status) == (rule, 400)
        assert why in error.message and "is refused" in error.message
    assert v4.connections == []
    assert v6 is None or v6.connections == []


@pytest.mark.parametrize("answers,why", [
    (["127.0.0.1"], "resolves to 127.0.0.1, which is a loopback address"),
    (["169.254.169.254"], "resolves to 169.254.169.254, which is a link-local address"),
    (["10.20.30.40"], "resolves to 10.20.30.40, which is a private address (10.0.0.0/8)"),
    (["192.168.1.10"], "resolves to 192.168.1.10, which is a private address (192.168.0.0/16)"),
    (["100.64.0.1"], "a shared (carrier-grade NAT) address"),
    (["fd00::1"], "a unique-local address (fc00::/7)"),
    (["fe80::1"], "a link-local address (fe80::/10)"),
    (["2002:7f00:1::1"], "a 6to4 address (2002::/16)"),
    (["64:ff9b::7f00:1"], "a NAT64 address (64:ff9b::/96)"),
    (["2001:0:4136:e378:8000:63bf:3fff:fdd2"], "a Teredo address (2001::/32)"),
    (["ff02::1"], "a multicast address"),
    (["93.184.215.14", "127.0.0.1"], "resolves to 127.0.0.1"),  # every address is checked
])
def test_a_name_resolving_inward_is_refused(v4, answers, why):
    calls = []

    def resolver(name, port):
        calls.append(name)
        return answers

    error = refuse(f"http://images.example:{v4.port}/image", FetchPolicy(ports=(v4.port,), resolver=resolver))
    assert error.rule == "address" and why in error.message
    assert calls == ["images.example"] and v4.connections == []


@pytest.mark.parametrize("url,rule", [
    ("http://169.254.169.254/latest/meta-data/", "address"),
    ("http://10.0.0.1/", "address"),
    ("http://192.168.0.1/", "address"),
    ("http://172.16.5.4/", "address"),
    ("http://[fd12:3456::1]/", "address"),
    ("http://[fe80::1%25eth0]/", "host"),
    ("http://224.0.0.1/", "address"),
    ("http://255.255.255.255/", "address"),
    ("https://8.8.8.8:8443/", "port"),
    ("http://8.8.8.8:22/", "port"),
    ("ftp://8.8.8.8/", "scheme"),
    ("file:///etc/passwd", "scheme"),
    ("gopher://8.8.8.8:70/", "scheme"),
    ("http://exa mple.com/", "syntax"),
    ("http://example.com\r\nX: y/", "syntax"),
    ("http://[::1/", "syntax"),
    ("http://a..b/", "host"),
    ("http:///path", "host"),
])
def test_internal_and_odd_urls_are_refused_by_default(url, rule):
    def resolver(name, port):
        raise AssertionError("a refused URL must not be resolved")

    assert refuse(url, FetchPolicy(resolver=resolver)).rule == rule


def test_the_checked_address_is_the_one_connected_to(origins, data):
    """DNS rebinding: the name's second answer (inward) is never used."""
    for _ in range(20):  # two servers on one port, 127.0.0.2 and 127.0.0.1 (the port may be taken on the second)
        outside = origins(data[:4096], host="127.0.0.2")
        try:
            inside = origins(data[:4096], host="127.0.0.1", port=outside.port)
            break
        except OSError:
            continue
    answers = iter([["127.0.0.2"]] + [["127.0.0.1"]] * 10)
    calls = []

    def rebinding(name, port):
        calls.append(name)
        return next(answers)

    policy = allowing(outside, resolver=rebinding)
    with open_url(f"http://rebind.example:{outside.port}/image", policy, idle_timeout=2) as source:
        assert read_all(source)[0] == data[:4096]
    assert calls == ["rebind.example"]
    assert len(outside.connections) == 1 and inside.connections == []
    assert outside.requests[0]["headers"]["Host"] == f"rebind.example:{outside.port}"


def test_an_allowed_redirect_is_followed(origins, data):
    target = origins(data[:4096])
    first = origins()
    with open_url(first.url(f"/redirect?to={target.url()}"), allowing(first, target), idle_timeout=2) as source:
        assert read_all(source)[0] == data[:4096]
    assert len(first.connections) == 1 and len(target.connections) == 1


@pytest.mark.parametrize("where,rule,why", [
    ("http://127.0.0.1:{other}/image", "allowed-hosts",
     "127.0.0.1:{other} is not in IMAGEDATA_WEB_DOWNLOAD_ALLOWED_HOSTS"),
    ("http://localhost:{other}/image", "allowed-hosts", "localhost:{other} is not in"),
    ("http://2130706433:{port}/image", "host", "non-standard form"),
    ("http://[::ffff:127.0.0.1]:{port}/image", "allowed-hosts", "[::ffff:7f00:1]:{port} is not in"),
    ("http://169.254.169.254/latest/meta-data/", "allowed-hosts", "169.254.169.254:80 is not in"),
    ("file:///etc/passwd", "scheme", "the scheme 'file' is not allowed"),
])
def test_a_redirect_to_a_refused_place_is_refused_without_connecting(origins, where, rule, why):
    other = origins()
    first = origins()
    where = where.format(port=first.port, other=other.port)
    error = refuse(first.url(f"/redirect?to={where}"), allowing(first))
    assert error.rule == rule and why.format(port=first.port, other=other.port) in error.message
    assert error.message.startswith(f"The redirect from {first.url('/redirect')}")
    assert len(first.connections) == 1 and other.connections == []


def test_too_many_redirects(origins):
    origin = origins()
    with pytest.raises(TooManyRedirects) as caught:
        open_url(origin.url("/loop/0"), allowing(origin), idle_timeout=2)
    assert "redirected more than 5 times" in caught.value.message
    assert [r["path"] for r in origin.requests] == [f"/loop/{n}" for n in range(6)]


def test_the_allowed_hosts_list_is_the_only_list(origins, tmp_path):
    """A listed internal host is fetched; an unlisted public one is refused unresolved."""
    origin = origins(b"x" * 10)

    def resolver(name, port):
        return {"mirror.internal": ["127.0.0.1"]}[name]

    settings = load_settings({"IMAGEDATA_DATA_DIR": str(tmp_path),
                              "IMAGEDATA_WEB_DOWNLOAD_ALLOWED_HOSTS": f"mirror.internal:{origin.port}"})
    listed = FetchPolicy.from_settings(settings, resolver=resolver)
    with open_url(f"http://mirror.internal:{origin.port}/image", listed, idle_timeout=2) as source:
        assert read_all(source)[0] == b"x" * 10
    assert refuse("http://8.8.8.8/", listed).rule == "allowed-hosts"
    assert refuse(f"http://mirror.internal:{origin.port + 1}/", listed).rule == "allowed-hosts"
    assert refuse(f"http://127.0.0.1:{origin.port}/", listed).rule == "allowed-hosts"
    assert len(origin.connections) == 1
