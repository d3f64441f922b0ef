"""Address classification and host reading (unit tests; the servers prove the rest)."""
from __future__ import annotations

import ipaddress

import pytest

from imagedata.service.webfetch.addresses import parse_host, refusal


@pytest.mark.parametrize("address", [
    "8.8.8.8", "1.1.1.1", "93.184.215.14", "151.101.1.69", "2606:4700:4700::1111", "2a00:1450:4001:82a::200e",
])
def test_global_unicast_is_allowed(address):
    assert refusal(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize("address,what", [
    ("0.1.2.3", "unspecified"), ("10.255.0.1", "private"), ("100.127.255.254", "carrier-grade NAT"),
    ("127.255.255.254", "loopback"), ("169.254.169.254", "link-local"), ("172.31.0.1", "private"),
    ("192.0.0.9", "IETF protocol assignment"),  # the whole block, its two anycast services included
    ("192.0.2.1", "documentation"), ("192.88.99.1", "6to4 relay"),
    ("192.168.255.255", "private"), ("198.19.0.1", "benchmarking"), ("198.51.100.7", "documentation"),
    ("203.0.113.9", "documentation"), ("239.255.255.250", "multicast"), ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    ("::", "unspecified"), ("::1", "loopback"), ("::ffff:8.8.8.8", "IPv4-mapped"),
    ("::8.8.8.8", "IPv4-compatible"), ("::ffff:0:808:808", "IPv4-translated"), ("64:ff9b::808:808", "NAT64"),
    ("64:ff9b:1::1", "local-use NAT64"), ("100::1", "discard-only"), ("2001::1", "Teredo"),
    ("2001:db8::1", "documentation"), ("2001:10::1", "IETF protocol assignment"), ("2002:808:808::1", "6to4"),
    ("3fff::1", "documentation"), ("5f00::1", "segment-routing"), ("fc00::1", "unique-local"),
    ("fdff::1", "unique-local"), ("fe80::1", "link-local"), ("fec0::1", "site-local"), ("ff0e::1", "multicast"),
    ("4000::1", "outside the global unicast range (2000::/3)"), ("1::1", "outside the global unicast range"),
])
def test_special_addresses_are_refused_with_their_name(address, what):
    assert what in (refusal(ipaddress.ip_address(address)) or "")


@pytest.mark.parametrize("host,expected", [
    ("Example.COM", "example.com"), ("example.com.", "example.com"), ("xn--bcher-kva.example", "xn--bcher-kva.example"),
    ("bücher.example", "xn--bcher-kva.example"), ("_dmarc.example.org", "_dmarc.example.org"),
    ("1.2.3.4", ipaddress.ip_address("1.2.3.4")), ("2001:db8::1", ipaddress.ip_address("2001:db8::1")),
    ("127.0.0.1.nip.io", "127.0.0.1.nip.io"),  # a name: refused later by what it resolves to
])
def test_hosts_are_read(host, expected):
    assert parse_host(host) == expected


@pytest.mark.parametrize("host", [
    "2130706433", "0x7f000001", "0x7F.1", "0177.0.0.1", "0177.0000.0000.0001", "127.1", "127.0.1", "1.2.3.4.",
    "01.2.3.4", "1.2.3.0x4", "1.2.3.4.5", "0", "0x", "example.0x10", "a.b.123", "", "a b", "a%2eb", "-a.example",
    "a..b", "fe80::1%eth0", "::ffff:127.0.0.1%1", "x" * 64 + ".example",
])
def test_odd_hosts_are_refused(host):
    with pytest.raises(ValueError):
        parse_host(host)
