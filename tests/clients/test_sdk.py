"""openstacksdk 4.22.0 used as a library, in this process, against gunicorn (no Keystone).

Connections as in /work/shared/peers/clients/sdk_example.py: ``auth_type="none"`` with the root URL (GET /
discovery, ``X-Auth-Token: notused``) against an IMAGEDATA_AUTH=noauth server, and ``auth_type="admin_token"``
with ``ROOT/v2`` against the token server. HOME is a fresh folder for every test.
"""
from __future__ import annotations

import os
import socket
import time

import openstack
import pytest
from openstack import exceptions

from tests.clients.helpers import (
    BIG_SIZE, CAP, NO_SUCH_ID, api, api_create, api_names, api_show, api_upload, corrupt, read, sha512, store_file,
    unique,
)

pytestmark = [pytest.mark.e2e, pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")]

MODES = ("none", "admin_token")


def connect(url, token=None):
    if token:
        return openstack.connect(auth_type="admin_token", auth={"token": token, "endpoint": f"{url}/v2"},
                                 load_yaml_config=False, load_envvars=False)
    return openstack.connect(auth_type="none", auth={"endpoint": url}, load_yaml_config=False, load_envvars=False)


@pytest.fixture(autouse=True)
def fresh_home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in [n for n in os.environ if n.startswith("OS_")]:
        monkeypatch.delenv(name)


@pytest.fixture(scope="module")
def targets(server, noauth_server, member):
    """mode -> (server, token for direct API checks, token for the SDK or None)."""
    return {"none": (noauth_server, "notused", None), "admin_token": (server, member, member)}


@pytest.fixture
def conn_for(targets):
    opened = []

    def factory(mode):
        srv, _, token = targets[mode]
        conn = connect(srv.url, token)
        opened.append(conn)
        return conn

    yield factory
    for conn in opened:
        conn.close()


def create(conn, name, path, **kwargs):
    return conn.image.create_image(name=name, filename=path, disk_format="raw", container_format="bare",
                                   use_import=False, **kwargs)


@pytest.mark.parametrize("mode", MODES)
def test_create_download_find_delete(conn_for, targets, data_file, tmp_path, mode):
    srv, api_token, _ = targets[mode]
    conn = conn_for(mode)
    session = api(srv, api_token)
    path, data = data_file
    name = unique(f"sdk-{mode}")

    # create_image looks the name up first (no duplicates by default): GET /v2/images/<name> must be 404
    created = create(conn, name, path, wait=True)
    image = conn.image.get_image(created.id)
    assert (image.name, image.status, image.size) == (name, "active", len(data))
    assert (image.hash_algo, image.hash_value) == ("sha512", sha512(data))

    out = tmp_path / "out.raw"
    conn.image.download_image(image, output=str(out), chunk_size=1 << 20)  # verified against os_hash_value
    assert read(out) == data
    assert conn.image.download_image(image).content == data                 # in memory, verified too

    assert [i.id for i in conn.image.images(name=name)] == [image.id]
    assert conn.image.find_image(name).id == image.id

    conn.image.delete_image(image)
    assert list(conn.image.images(name=name)) == []
    assert api_show(session, image.id).status_code == 404


def test_images_follows_next_beyond_the_default_page(server):
    token = server.token(unique("sdk-list"), "member,reader")
    ids = {api_create(api(server, token), f"sdk-list-{i:02d}") for i in range(27)}
    conn = connect(server.url, token)
    try:
        assert {image.id for image in conn.image.images()} == ids           # 25 + 2: follows `next`
        assert {image.id for image in conn.image.images(limit=10)} == ids   # pages of 10
    finally:
        conn.close()


def test_corrupted_store_file_fails_the_download(conn_for, server, member, data_file, tmp_path):
    session = api(server, member)
    path, data = data_file
    image_id = api_create(session, unique("sdk-corrupt"))
    api_upload(session, image_id, data)
    corrupt(store_file(server, image_id))
    conn = conn_for("admin_token")
    with pytest.raises(exceptions.SDKException, match=r"checksum mismatch \(sha512\): " + sha512(data)):
        conn.image.download_image(image_id, output=str(tmp_path / "out.raw"))
    with pytest.raises(exceptions.InvalidResponse, match=r"checksum mismatch \(sha512\)"):
        conn.image.download_image(image_id)


def test_auth_none_token_is_refused_by_token_mode(server):
    """X-Auth-Token: notused -> 401. The list asks for JSON, so the SDK shows the service's message."""
    conn = connect(server.url)
    try:
        with pytest.raises(exceptions.HttpException) as caught:
            list(conn.image.images())
    finally:
        conn.close()
    assert caught.value.status_code == 401
    assert "The request you have made requires authentication." in str(caught.value)


# ------------------------------------------------------------------ errors as SDK exceptions

def test_404(conn_for):
    conn = conn_for("admin_token")
    with pytest.raises(exceptions.NotFoundException) as caught:
        conn.image.get_image(NO_SUCH_ID)
    assert caught.value.status_code == 404
    # GET by id sends Accept: */*; the SDK still gets JSON and shows our message
    assert f"No image found with ID {NO_SUCH_ID}" in str(caught.value)
    with pytest.raises(exceptions.NotFoundException):
        conn.image.delete_image(NO_SUCH_ID, ignore_missing=False)
    assert conn.image.find_image(NO_SUCH_ID) is None


def test_409_create_with_an_existing_id(conn_for, server, member):
    image_id = api_create(api(server, member), unique("sdk-409"))
    conn = conn_for("admin_token")
    with pytest.raises(exceptions.ConflictException) as caught:
        conn.image.create_image(name=unique("sdk-dup"), id=image_id, disk_format="raw", container_format="bare",
                                use_import=False, allow_duplicates=True)
    assert caught.value.status_code == 409
    # POST sends Accept: */*; the SDK gets JSON and shows our message
    assert "already exists" in str(caught.value)


def test_413_over_the_size_cap_and_cleanup(conn_for, server, member, big_file):
    """PUT .../file refused with 413; the SDK then DELETEs the image it created, on the same connection.

    Repeated: the follow-up DELETE goes out on the kept-alive connection right away, and must work every
    time. A server that answers before reading the whole body must say ``Connection: close`` (RFC 9110
    section 10.1.1) or read and discard the rest; if it says keep-alive and then drops the connection, the
    DELETE fails and the SDK raises "Image creation failed: Unable to establish connection" instead.
    """
    assert BIG_SIZE > CAP
    session = api(server, member)
    path, _ = big_file
    conn = conn_for("admin_token")
    for attempt in range(8):
        name = unique("sdk-413")
        with pytest.raises(exceptions.SDKException) as caught:
            create(conn, name, path, allow_duplicates=True)
        assert isinstance(caught.value, exceptions.HttpException), f"attempt {attempt}: {caught.value!r}"
        assert caught.value.status_code == 413
        # PUT sends an empty Accept; the SDK gets JSON and shows our message naming the cap
        assert "image size cap" in str(caught.value)
        assert name not in api_names(session)


def test_early_413_keeps_its_keep_alive_promise(server, member, big_file):
    """Deterministic witness for the SDK failure above, with a raw socket.

    The 413 for an over-cap ``Content-Length`` comes before the body is read. If the response announces
    keep-alive, the connection must still be open a moment later (gunicorn's keepalive is 5 s), else a
    client that reuses it at once (the SDK's DELETE) fails. ``Connection: close`` is the honest answer.
    """
    path, data = big_file
    image_id = api_create(api(server, member), unique("sdk-ka"))
    head = (f"PUT /v2/images/{image_id}/file HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            f"X-Auth-Token: {member}\r\nContent-Type: application/octet-stream\r\nAccept: \r\n"
            f"Content-Length: {len(data)}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(head)
        try:
            sock.sendall(data)  # the server may stop reading (and close) while we send
        except OSError:
            pass
        response = b""
        try:
            while b"\r\n\r\n" not in response:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                response += chunk
        except OSError:
            pass
        status_line, _, rest = response.partition(b"\r\n")
        assert status_line.startswith(b"HTTP/1.1 413"), response
        headers = {k.strip().lower(): v.strip().lower()
                   for k, _, v in (line.partition(b":") for line in rest.split(b"\r\n\r\n")[0].split(b"\r\n"))}
        if headers.get(b"connection") == b"close":
            return
        body = response.partition(b"\r\n\r\n")[2]
        try:
            while len(body) < int(headers.get(b"content-length", b"0")):  # read the whole 413 first
                chunk = sock.recv(65536)
                if not chunk:
                    break
                body += chunk
        except OSError:
            pass
        time.sleep(1.0)
        sock.settimeout(0.5)
        try:
            closed = sock.recv(1, socket.MSG_PEEK) == b""
        except socket.timeout:
            closed = False  # still open, nothing to read: keep-alive honoured
        except OSError:
            closed = True   # reset
        assert not closed, ("413 sent with 'Connection: keep-alive' before the body was read, then the "
                            "connection was closed: say 'Connection: close' or drain the body")
