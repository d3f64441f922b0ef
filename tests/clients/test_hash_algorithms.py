"""IMAGEDATA_HASH_ALGO: every accepted algorithm is recorded as os_hash_algo, and the real clients
(python-glanceclient and openstacksdk, as libraries) verify downloads with it.

One server per algorithm (the setting is server-wide). A corrupted store file must make both
clients fail naming the os_hash_value they expected: proof that they checked the multihash of
that algorithm, not only the md5.
"""
from __future__ import annotations

import hashlib
import random

import openstack
import pytest
from glanceclient import Client as GlanceClient
from openstack import exceptions

from imagedata.config import HASH_ALGORITHMS
from tests.clients.helpers import api, api_create, api_show, api_upload, corrupt, store_file, unique

pytestmark = [pytest.mark.e2e, pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")]

DATA = random.Random(7).randbytes(300_000)


@pytest.fixture(scope="module", params=HASH_ALGORITHMS)
def algo_server(request, start_module_server):
    """(algorithm, server, token) for a server hashing with that algorithm."""
    srv = start_module_server(f"hash-{request.param}", IMAGEDATA_HASH_ALGO=request.param)
    yield request.param, srv, srv.token("p1", "member,reader")
    srv.stop()  # the next algorithm's server takes its place


def _uploaded(srv, token, name):
    session = api(srv, token)
    image_id = api_create(session, unique(name))
    api_upload(session, image_id, DATA)
    return session, image_id


def _sdk(srv, token):
    return openstack.connect(auth_type="admin_token", auth={"token": token, "endpoint": f"{srv.url}/v2"},
                             load_yaml_config=False, load_envvars=False)


def test_os_hash_algo_records_the_configured_algorithm(algo_server):
    algo, srv, token = algo_server
    session, image_id = _uploaded(srv, token, f"algo-{algo}")
    image = api_show(session, image_id).json()
    assert (image["os_hash_algo"], image["os_hash_value"]) == (algo, hashlib.new(algo, DATA).hexdigest())
    assert image["checksum"] == hashlib.md5(DATA).hexdigest()


def test_clients_verify_downloads_with_it(algo_server):
    algo, srv, token = algo_server
    _, image_id = _uploaded(srv, token, f"dl-{algo}")
    glance = GlanceClient("2", endpoint=srv.url, token=token)
    assert b"".join(glance.images.data(image_id)) == DATA
    conn = _sdk(srv, token)
    try:
        assert conn.image.download_image(image_id).content == DATA
    finally:
        conn.close()


def test_clients_refuse_corrupted_data_naming_the_multihash(algo_server):
    algo, srv, token = algo_server
    _, image_id = _uploaded(srv, token, f"bad-{algo}")
    corrupt(store_file(srv, image_id))
    expected = hashlib.new(algo, DATA).hexdigest()
    glance = GlanceClient("2", endpoint=srv.url, token=token)
    with pytest.raises(IOError, match=f"expected {expected}"):
        b"".join(glance.images.data(image_id))
    conn = _sdk(srv, token)
    try:
        with pytest.raises(exceptions.SDKException, match=rf"checksum mismatch \({algo}\): {expected}"):
            conn.image.download_image(image_id)
    finally:
        conn.close()
