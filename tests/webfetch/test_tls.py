"""https: certificates are verified by default, against the URL's name, sent as SNI."""
from __future__ import annotations

import shutil
import ssl
import subprocess

import pytest

from imagedata.config import parse_allowed_hosts
from imagedata.service.webfetch import FetchPolicy, TLSFailed, open_url
from tests.helpers import skip_or_fail
from tests.webfetch.conftest import MIB, assert_cut_stops_a_stalled_read, read_all

NAME = "images.test"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for images.test: (certificate file, key file)."""
    if not shutil.which("openssl"):
        skip_or_fail("openssl is not installed (apt-get install openssl)")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "2", "-subj", f"/CN={NAME}", "-addext", f"subjectAltName=DNS:{NAME}",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


@pytest.fixture
def tls_origin(origins, certificate):
    """An https origin on 127.0.0.1 presenting the images.test certificate."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return origins(b"secure bytes", tls=context)


def policy_for(origin, **options) -> FetchPolicy:
    """images.test resolves to the origin; the list allows it."""
    return FetchPolicy(allowed_hosts=parse_allowed_hosts("X", f"{NAME}:{origin.port}"),
                       resolver=lambda name, port: ["127.0.0.1"], **options)


def test_an_unknown_certificate_is_refused_by_default(tls_origin):
    with pytest.raises(TLSFailed) as caught:
        open_url(tls_origin.url(host=NAME), policy_for(tls_origin), idle_timeout=2)
    assert "certificate" in caught.value.message and f"{NAME}:{tls_origin.port}" in caught.value.message
    assert tls_origin.requests == []


def test_a_trusted_certificate_for_the_name_is_accepted(tls_origin, certificate):
    trusting = ssl.create_default_context(cafile=str(certificate[0]))
    with open_url(tls_origin.url(host=NAME), policy_for(tls_origin, tls_context=trusting), idle_timeout=2) as source:
        assert read_all(source)[0] == b"secure bytes"
    assert tls_origin.server_names == [NAME]
    assert tls_origin.requests[0]["headers"]["Host"] == f"{NAME}:{tls_origin.port}"


def test_the_certificate_must_match_the_name(tls_origin, certificate):
    """Fetched by address, the certificate for images.test does not fit."""
    trusting = ssl.create_default_context(cafile=str(certificate[0]))
    policy = FetchPolicy(allowed_hosts=parse_allowed_hosts("X", f"127.0.0.1:{tls_origin.port}"), tls_context=trusting)
    with pytest.raises(TLSFailed, match="IP address mismatch"):
        open_url(tls_origin.url(), policy, idle_timeout=2)


def test_a_cut_stops_a_stalled_https_read_at_once(origins, certificate):
    """The cut shuts the socket under the TLS layer down: the TLS read waiting on it ends."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    origin = origins(bytes(4 * MIB), tls=context, stall_after=MIB)
    trusting = ssl.create_default_context(cafile=str(certificate[0]))
    with open_url(origin.url(host=NAME), policy_for(origin, tls_context=trusting), idle_timeout=60) as source:
        assert_cut_stops_a_stalled_read(source, MIB)

