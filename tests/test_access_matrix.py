"""Who may do what to whose image: the access matrix, auth modes, spoofing and read-only fields.

The matrix follows Glance's new default policies (spec section 8, conformance tests 52-66 and the
"What the real Glance answered under fakeauth" table of the peers kit):

  get_image       admin or (reader and visible)       visible: owner, public, community,
  get_images      admin or reader                              shared with the caller as a member
  upload_image    admin or (member and owner)                  (any member status), admin
  download_image  admin or (member and visible)
  delete/deactivate  admin or (member and owner)

A denial answers 404 when the caller may not even "get" the image, 403 otherwise.
Every image in the matrix is owned by project p1; the shared images are shared with p2.
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import shutil
import uuid

import pytest

from imagedata.app import create_app
from imagedata.config import ConfigError
from imagedata.db import close_pool, database
from imagedata.migrations import sync_schema
from imagedata.models import Image, Token
from imagedata.service.tokens import create_token, hash_token
from tests.conftest import make_env, prepare_database, store_files
from tests.helpers import OCTET, with_env

PATCH_TYPE = "application/openstack-images-v2.1-json-patch"
JSON = {"Accept": "application/json"}
DATA = b"matrix image data"

CALLERS = {
    # name: (project, roles)
    "owner-member": ("p1", ("member", "reader")),
    "owner-reader": ("p1", ("reader",)),
    "other-member": ("p2", ("member", "reader")),
    "other-reader": ("p2", ("reader",)),
    "admin": ("ops", ("admin",)),
    "no-roles": ("p1", ()),
}


def table(text: str) -> dict[tuple[str, str], str]:
    """Parse a whitespace table (header row: visibilities; first column: callers) into cells."""
    lines = [line.split() for line in text.strip().splitlines() if line.strip()]
    header = lines[0]
    cells = {}
    for row in lines[1:]:
        caller, values = row[0], row[1:]
        assert caller in CALLERS and len(values) == len(header), row
        for visibility, value in zip(header, values):
            cells[(caller, visibility)] = value
    return cells


def cells(matrix: dict) -> list:
    return [pytest.param(caller, visibility, expected, id=f"{caller}-{visibility}")
            for (caller, visibility), expected in matrix.items()]


# --------------------------------------------------------------------------- the expected answers

SHOW = table("""
               private  shared  shared-pending  shared-accepted  community  public
owner-member   200      200     200             200              200        200
owner-reader   200      200     200             200              200        200
other-member   404      404     200             200              200        200
other-reader   404      404     200             200              200        200
admin          200      200     200             200              200        200
no-roles       404      404     404             404              404        404
""")

# listed / hidden in the default GET /v2/images; 403 when the caller may not list at all.
# Admins do not see other owners' community images unless they filter visibility=community.
LIST = table("""
               private  shared  shared-pending  shared-accepted  community  public
owner-member   listed   listed  listed          listed           listed     listed
owner-reader   listed   listed  listed          listed           listed     listed
other-member   hidden   hidden  hidden          listed           hidden     listed
other-reader   hidden   hidden  hidden          listed           hidden     listed
admin          listed   listed  listed          listed           hidden     listed
no-roles       403      403     403             403              403        403
""")

# PUT /file on a queued image.
UPLOAD = table("""
               private  shared  shared-pending  shared-accepted  community  public
owner-member   204      204     204             204              204        204
owner-reader   403      403     403             403              403        403
other-member   404      404     403             403              403        403
other-reader   404      404     403             403              403        403
admin          204      204     204             204              204        204
no-roles       404      404     404             404              404        404
""")

# GET /file on an active image.
DOWNLOAD = table("""
               private  shared  shared-pending  shared-accepted  community  public
owner-member   200      200     200             200              200        200
owner-reader   403      403     403             403              403        403
other-member   404      404     200             200              200        200
other-reader   404      404     403             403              403        403
admin          200      200     200             200              200        200
no-roles       404      404     404             404              404        404
""")

# DELETE of an active image.
DELETE = table("""
               private  shared  shared-pending  shared-accepted  community  public
owner-member   204      204     204             204              204        204
owner-reader   403      403     403             403              403        403
other-member   404      404     403             403              403        403
other-reader   404      404     403             403              403        403
admin          204      204     204             204              204        204
no-roles       404      404     404             404              404        404
""")

# POST /actions/deactivate on an active image.
DEACTIVATE = DELETE


# --------------------------------------------------------------------------- fixtures and helpers


@dataclasses.dataclass
class Cell:
    """What a matrix cell runs with: a client, every caller's headers, the folder of the stores."""

    client: object
    headers: dict
    root: object


@pytest.fixture(scope="module")
def matrix_app(db_backend, request, tmp_path_factory):
    """One app, database and set of tokens for all the matrix cells of a backend (216 cells: an
    app per cell would cost more than the cells); ``cell`` empties it between cells."""
    root = tmp_path_factory.mktemp(f"matrix-{db_backend}")
    made = None
    if db_backend == "postgresql":
        pg = request.getfixturevalue("postgres")
        made = pg.create_database("imagedata_matrix")
        url = pg.url(made)
    else:
        url = f"sqlite:///{root}/data/imagedata.db"
    application = create_app(make_env(root, IMAGEDATA_DATABASE_URL=url))
    sync_schema()
    with database.connection_context():
        headers = {name: {"X-Auth-Token": create_token(project, None, roles, None)[1], **JSON}
                   for name, (project, roles) in CALLERS.items()}
    matrix_db = database.obj
    yield application, matrix_db, headers, root
    database.initialize(matrix_db)
    close_pool()
    if made:
        pg.drop_database(made)


@pytest.fixture
def cell(matrix_app):
    """A matrix cell: no image in the database or the stores, the matrix's tokens still valid."""
    application, matrix_db, headers, root = matrix_app
    database.initialize(matrix_db)  # other tests of the module point the proxy elsewhere
    yield Cell(application.test_client(), headers, root)
    database.initialize(matrix_db)
    with database.connection_context():
        Image.delete().execute()  # properties, tags and members cascade
    shutil.rmtree(root / "stores", ignore_errors=True)
    for store in application.extensions["imagedata"].stores:
        store.prepare()


@pytest.fixture
def headers(make_token):
    """X-Auth-Token headers (asking for JSON errors) for every caller of the matrix."""
    return {name: {"X-Auth-Token": make_token(project, roles), **JSON}
            for name, (project, roles) in CALLERS.items()}


def create(client, hdrs, **fields):
    body = {"name": "m", "disk_format": "raw", "container_format": "bare", **fields}
    response = client.post("/v2/images", json=body, headers=hdrs)
    assert response.status_code == 201, response.data
    return response.get_json()["id"]


def patch(client, image_id, hdrs, ops):
    return client.patch(f"/v2/images/{image_id}", data=json.dumps(ops), content_type=PATCH_TYPE, headers=hdrs)


def put_file(client, image_id, hdrs, data=DATA):
    return client.put(f"/v2/images/{image_id}/file", data=data, headers={**hdrs, "Content-Type": OCTET})


def image_row(client, headers, image_id):
    """The image as the admin sees it (None when it 404s)."""
    response = client.get(f"/v2/images/{image_id}", headers=headers["admin"])
    return response.get_json() if response.status_code == 200 else None


def make_image(client, headers, visibility: str, active: bool) -> str:
    """An image of p1 in the matrix's visibility state, queued or active (uploaded by p1)."""
    owner = headers["owner-member"]
    base = {"shared-pending": "shared", "shared-accepted": "shared"}.get(visibility, visibility)
    image_id = create(client, owner, visibility="shared" if base == "public" else base)
    if base == "public":
        response = patch(client, image_id, headers["admin"],
                         [{"op": "replace", "path": "/visibility", "value": "public"}])
        assert response.status_code == 200, response.data
    if visibility in ("shared-pending", "shared-accepted"):
        response = client.post(f"/v2/images/{image_id}/members", json={"member": "p2"}, headers=owner)
        assert response.status_code == 200, response.data
    if visibility == "shared-accepted":
        response = client.put(f"/v2/images/{image_id}/members/p2", json={"status": "accepted"},
                              headers=headers["other-member"])
        assert response.status_code == 200, response.data
    if active:
        assert put_file(client, image_id, owner).status_code == 204
    assert image_row(client, headers, image_id)["visibility"] == base
    return image_id


def assert_error(response, status: int, image_id: str | None = None):
    """A JSON error body with Glance's keys; a 404 names the image, never why it is hidden."""
    assert response.status_code == status, response.data
    body = response.get_json()
    assert set(body) == {"message", "code", "title"}, body
    assert body["code"].startswith(str(status))
    if status == 404 and image_id:
        assert body["message"] == f"No image found with ID {image_id}"


def listed_ids(client, hdrs, query=""):
    response = client.get(f"/v2/images?limit=1000{query}", headers=hdrs)
    if response.status_code != 200:
        return response.status_code
    return {image["id"] for image in response.get_json()["images"]}


# --------------------------------------------------------------------------- the matrix


@pytest.mark.parametrize("caller, visibility, expected", cells(SHOW))
def test_show(cell, caller, visibility, expected):
    image_id = make_image(cell.client, cell.headers, visibility, active=False)
    response = cell.client.get(f"/v2/images/{image_id}", headers=cell.headers[caller])
    if expected == "200":
        assert response.status_code == 200, response.data
        assert response.get_json()["id"] == image_id
        assert response.get_json()["owner"] == "p1"
    else:
        assert_error(response, int(expected), image_id)


@pytest.mark.parametrize("caller, visibility, expected", cells(LIST))
def test_list_contains(cell, caller, visibility, expected):
    image_id = make_image(cell.client, cell.headers, visibility, active=False)
    found = listed_ids(cell.client, cell.headers[caller])
    if expected == "403":
        assert found == 403
    else:
        assert isinstance(found, set)
        assert (image_id in found) == (expected == "listed")


@pytest.mark.parametrize("caller, visibility, expected", cells(UPLOAD))
def test_upload(cell, caller, visibility, expected):
    image_id = make_image(cell.client, cell.headers, visibility, active=False)
    response = put_file(cell.client, image_id, cell.headers[caller])
    image = image_row(cell.client, cell.headers, image_id)
    if expected == "204":
        assert response.status_code == 204, response.data
        assert image["status"] == "active" and image["size"] == len(DATA)
        assert len(store_files(cell.root)) == 1
    else:
        assert_error(response, int(expected), image_id)
        assert image["status"] == "queued"
        assert image["size"] is None and image["checksum"] is None
        assert store_files(cell.root) == []


@pytest.mark.parametrize("caller, visibility, expected", cells(DOWNLOAD))
def test_download(cell, caller, visibility, expected):
    image_id = make_image(cell.client, cell.headers, visibility, active=True)
    response = cell.client.get(f"/v2/images/{image_id}/file", headers=cell.headers[caller])
    if expected == "200":
        assert response.status_code == 200
        assert response.data == DATA
    else:
        assert_error(response, int(expected), image_id)
        assert DATA not in response.data


@pytest.mark.parametrize("caller, visibility, expected", cells(DELETE))
def test_delete(cell, caller, visibility, expected):
    image_id = make_image(cell.client, cell.headers, visibility, active=True)
    response = cell.client.delete(f"/v2/images/{image_id}", headers=cell.headers[caller])
    if expected == "204":
        assert response.status_code == 204, response.data
        assert image_row(cell.client, cell.headers, image_id) is None
        assert store_files(cell.root) == []
    else:
        assert_error(response, int(expected), image_id)
        assert image_row(cell.client, cell.headers, image_id)["status"] == "active"
        assert len(store_files(cell.root)) == 1


@pytest.mark.parametrize("caller, visibility, expected", cells(DEACTIVATE))
def test_deactivate(cell, caller, visibility, expected):
    image_id = make_image(cell.client, cell.headers, visibility, active=True)
    response = cell.client.post(f"/v2/images/{image_id}/actions/deactivate", headers=cell.headers[caller])
    if expected == "204":
        assert response.status_code == 204, response.data
        assert image_row(cell.client, cell.headers, image_id)["status"] == "deactivated"
    else:
        assert_error(response, int(expected), image_id)
        assert image_row(cell.client, cell.headers, image_id)["status"] == "active"


def test_matrix_tables_are_complete():
    for matrix in (SHOW, LIST, UPLOAD, DOWNLOAD, DELETE, DEACTIVATE):
        assert len(matrix) == 36


# --------------------------------------------------------------------------- the 404-never-403 rule on every path


HIDDEN_PATHS = [
    ("GET", "", None),
    ("PATCH", "", [{"op": "replace", "path": "/name", "value": "x"}]),
    ("DELETE", "", None),
    ("GET", "/file", None),
    ("PUT", "/file", DATA),
    ("POST", "/actions/deactivate", None),
    ("POST", "/actions/reactivate", None),
    ("PUT", "/tags/t1", None),
    ("DELETE", "/tags/t0", None),
    ("GET", "/members", None),
    ("POST", "/members", {"member": "p3"}),
    ("GET", "/members/p2", None),
    ("PUT", "/members/p2", {"status": "accepted"}),
    ("DELETE", "/members/p2", None),
]


def _call(client, method, path, body, hdrs):
    kwargs = {}
    if isinstance(body, bytes):
        kwargs = {"data": body, "content_type": OCTET}
    elif body is not None:
        kwargs = {"data": json.dumps(body), "content_type": PATCH_TYPE if method == "PATCH" else "application/json"}
    return client.open(path, method=method, headers=hdrs, **kwargs)


@pytest.mark.parametrize("caller", ["other-member", "other-reader", "no-roles"])
@pytest.mark.parametrize("method, suffix, body", HIDDEN_PATHS, ids=[f"{m} {s or '/'}" for m, s, _ in HIDDEN_PATHS])
def test_hidden_image_is_404_on_every_path(client, headers, caller, method, suffix, body):
    """p1's private image (with a tag) does not exist for p2 nor for a role-less p1 user."""
    image_id = create(client, headers["owner-member"], visibility="private", tags=["t0"])
    assert put_file(client, image_id, headers["owner-member"]).status_code == 204
    response = _call(client, method, f"/v2/images/{image_id}{suffix}", body, headers[caller])
    assert_error(response, 404)
    image = image_row(client, headers, image_id)
    assert (image["status"], image["name"], image["tags"]) == ("active", "m", ["t0"])


@pytest.mark.parametrize("method, suffix, body", [
    ("PATCH", "", [{"op": "replace", "path": "/name", "value": "x"}]),
    ("DELETE", "", None),
    ("POST", "/actions/deactivate", None),
    ("PUT", "/tags/t1", None),
    ("DELETE", "/tags/t0", None),
    ("POST", "/members", {"member": "p3"}),
    ("DELETE", "/members/p2", None),
], ids=lambda v: v if isinstance(v, str) else None)
def test_visible_but_not_owned_is_403(client, headers, method, suffix, body):
    """p2 (a pending member) can see p1's shared image but may change nothing on it."""
    image_id = make_image(client, headers, "shared-pending", active=True)
    client.put(f"/v2/images/{image_id}/tags/t0", headers=headers["owner-member"])
    response = _call(client, method, f"/v2/images/{image_id}{suffix}", body, headers["other-member"])
    assert_error(response, 403)
    image = image_row(client, headers, image_id)
    assert (image["status"], image["name"], image["tags"]) == ("active", "m", ["t0"])


# --------------------------------------------------------------------------- deactivation (tests 52-54)


def test_deactivated_image_data_only_for_admins(client, headers):
    image_id = make_image(client, headers, "public", active=True)
    owner, admin = headers["owner-member"], headers["admin"]
    assert client.post(f"/v2/images/{image_id}/actions/deactivate", headers=owner).status_code == 204
    assert client.post(f"/v2/images/{image_id}/actions/deactivate", headers=owner).status_code == 204
    assert_error(client.get(f"/v2/images/{image_id}/file", headers=owner), 403)
    assert_error(client.get(f"/v2/images/{image_id}/file", headers=headers["other-member"]), 403)
    assert client.get(f"/v2/images/{image_id}", headers=owner).status_code == 200
    admin_get = client.get(f"/v2/images/{image_id}/file", headers=admin)
    assert (admin_get.status_code, admin_get.data) == (200, DATA)
    assert client.post(f"/v2/images/{image_id}/actions/reactivate", headers=owner).status_code == 204
    assert client.post(f"/v2/images/{image_id}/actions/reactivate", headers=owner).status_code == 204
    assert client.get(f"/v2/images/{image_id}/file", headers=owner).data == DATA


def test_deactivated_private_image_still_404_for_others(client, headers):
    image_id = make_image(client, headers, "private", active=True)
    assert client.post(f"/v2/images/{image_id}/actions/deactivate", headers=headers["admin"]).status_code == 204
    assert_error(client.get(f"/v2/images/{image_id}/file", headers=headers["other-member"]), 404, image_id)


def test_deactivate_queued_image_is_403(client, headers):
    image_id = make_image(client, headers, "private", active=False)
    assert_error(client.post(f"/v2/images/{image_id}/actions/deactivate", headers=headers["owner-member"]), 403)
    assert image_row(client, headers, image_id)["status"] == "queued"


def test_reactivate_by_other_project_member_is_403_on_public(client, headers):
    image_id = make_image(client, headers, "public", active=True)
    assert client.post(f"/v2/images/{image_id}/actions/deactivate", headers=headers["admin"]).status_code == 204
    assert_error(client.post(f"/v2/images/{image_id}/actions/reactivate", headers=headers["other-member"]), 403)
    assert image_row(client, headers, image_id)["status"] == "deactivated"


# --------------------------------------------------------------------------- create / modify / publicize


@pytest.mark.parametrize("caller, visibility, expected", [
    ("owner-member", "private", 201), ("owner-member", "shared", 201), ("owner-member", "community", 201),
    ("owner-member", "public", 403), ("owner-reader", "private", 403), ("no-roles", "private", 403),
    ("admin", "public", 201), ("admin", "community", 201),
])
def test_create_by_role_and_visibility(client, headers, caller, visibility, expected):
    response = client.post("/v2/images", json={"name": "c", "visibility": visibility}, headers=headers[caller])
    assert response.status_code == expected, response.data
    if expected == 201:
        assert response.get_json()["owner"] == CALLERS[caller][0]
    else:
        assert_error(response, 403)


@pytest.mark.parametrize("caller, target, expected", [
    ("owner-member", "public", 403), ("owner-member", "community", 200), ("owner-member", "private", 200),
    ("owner-reader", "private", 403), ("admin", "public", 200),
])
def test_patch_visibility(client, headers, caller, target, expected):
    image_id = create(client, headers["owner-member"], visibility="shared")
    response = patch(client, image_id, headers[caller], [{"op": "replace", "path": "/visibility", "value": target}])
    assert response.status_code == expected, response.data
    visibility = image_row(client, headers, image_id)["visibility"]
    assert visibility == (target if expected == 200 else "shared")


# --------------------------------------------------------------------------- fields no client may set

SERVER_OWNED = [
    ("status", "active"), ("size", 5), ("virtual_size", 5), ("checksum", "0" * 32),
    ("os_hash_algo", "sha512"), ("os_hash_value", "0" * 128), ("stores", "local"),
]


@pytest.mark.parametrize("caller", ["owner-member", "admin"])
@pytest.mark.parametrize("field, value", SERVER_OWNED, ids=[f for f, _ in SERVER_OWNED])
def test_create_with_server_owned_field_is_403(client, headers, caller, field, value):
    response = client.post("/v2/images", json={"name": "ro", field: value}, headers=headers[caller])
    assert_error(response, 403)
    assert field in response.get_json()["message"]
    assert listed_ids(client, headers["admin"], "&visibility=all") == set()


@pytest.mark.parametrize("caller", ["owner-member", "admin"])
@pytest.mark.parametrize("op", ["replace", "add"])
@pytest.mark.parametrize("field, value", SERVER_OWNED, ids=[f for f, _ in SERVER_OWNED])
def test_patch_server_owned_field_is_403(client, headers, caller, op, field, value):
    image_id = create(client, headers["owner-member"])
    before = image_row(client, headers, image_id)
    response = patch(client, image_id, headers[caller], [{"op": op, "path": f"/{field}", "value": value}])
    assert_error(response, 403)
    after = image_row(client, headers, image_id)
    assert after == before


def test_owner_cannot_be_set_by_non_admin(client, headers):
    owner = headers["owner-member"]
    assert_error(client.post("/v2/images", json={"name": "o", "owner": "p2"}, headers=owner), 403)
    assert client.post("/v2/images", json={"name": "o", "owner": "p1"}, headers=owner).status_code == 201
    image_id = create(client, owner)
    response = patch(client, image_id, owner, [{"op": "replace", "path": "/owner", "value": "p2"}])
    assert_error(response, 403)
    assert image_row(client, headers, image_id)["owner"] == "p1"


def test_owner_can_be_set_by_admin(client, headers):
    image_id = create(client, headers["admin"], owner="p2")
    assert image_row(client, headers, image_id)["owner"] == "p2"
    response = patch(client, image_id, headers["admin"], [{"op": "replace", "path": "/owner", "value": "p1"}])
    assert response.status_code == 200, response.data
    assert client.get(f"/v2/images/{image_id}", headers=headers["owner-member"]).status_code == 200


# --------------------------------------------------------------------------- IMAGEDATA_DATA_ADMIN_ONLY


@with_env(IMAGEDATA_DATA_ADMIN_ONLY="true")
@pytest.mark.parametrize("caller, upload, download", [
    ("owner-member", 403, 403), ("owner-reader", 403, 403), ("other-member", 403, 403),
    ("admin", 204, 200), ("no-roles", 404, 404),
])
def test_data_admin_only(client, headers, tmp_path, caller, upload, download):
    queued = make_image(client, headers, "public", active=False)
    response = put_file(client, queued, headers[caller])
    assert response.status_code == upload, response.data
    if upload != 204:
        assert image_row(client, headers, queued)["status"] == "queued"
    active = create(client, headers["owner-member"], visibility="community")
    assert put_file(client, active, headers["admin"]).status_code == 204
    assert client.get(f"/v2/images/{active}/file", headers=headers[caller]).status_code == download
    # Metadata is unaffected.
    if caller != "no-roles":
        assert client.get(f"/v2/images/{active}", headers=headers[caller]).status_code == 200


@with_env(IMAGEDATA_DATA_ADMIN_ONLY="true")
def test_data_admin_only_hides_private_image_data_as_404(client, headers):
    image_id = create(client, headers["owner-member"], visibility="private")
    assert_error(put_file(client, image_id, headers["other-member"]), 404, image_id)


# --------------------------------------------------------------------------- policy overrides (tests 61, 62)


@with_env(IMAGEDATA_POLICY="upload_image=false; download_image=false")
def test_policy_override_denied_but_visible_is_403(client, headers):
    image_id = create(client, headers["owner-member"])
    assert_error(put_file(client, image_id, headers["owner-member"]), 403)
    assert_error(client.get(f"/v2/images/{image_id}/file", headers=headers["owner-member"]), 403)


@with_env(IMAGEDATA_POLICY="upload_image=false; download_image=false; get_image=false")
def test_policy_override_denied_and_invisible_is_404(client, headers):
    image_id = str(uuid.uuid4())
    with database.connection_context():
        Image.create(id=image_id, owner="p1", disk_format="raw", container_format="bare")
    assert_error(put_file(client, image_id, headers["owner-member"]), 404, image_id)
    assert_error(client.get(f"/v2/images/{image_id}/file", headers=headers["owner-member"]), 404, image_id)


@with_env(IMAGEDATA_POLICY="get_image=false")
def test_create_answers_201_even_when_get_image_is_denied(client, headers):
    """Glance's create returns the new image without a get_image check; a 404 here would make
    clients retry and create duplicates."""
    response = client.post("/v2/images", json={"name": "c"}, headers=headers["owner-member"])
    assert response.status_code == 201, response.data
    assert response.get_json()["owner"] == "p1"


# --------------------------------------------------------------------------- token auth (the default mode)


def _expired_token(make_token):
    secret = make_token("p1")
    with database.connection_context():
        Token.update(expires_at=datetime.datetime(2000, 1, 1)).where(Token.token_hash == hash_token(secret)).execute()
    return secret


def _revoked_token(make_token, runner):
    secret = make_token("p1")
    with database.connection_context():
        row = Token.get(Token.token_hash == hash_token(secret))
    result = runner.invoke(args=["token", "revoke", row.token_id])
    assert result.exit_code == 0, result.output
    return secret


BAD_TOKENS = {
    "missing": lambda make_token, runner: None,
    "empty": lambda make_token, runner: "",
    "unknown": lambda make_token, runner: "idt_" + "x" * 43,
    "no-prefix": lambda make_token, runner: "alice:p1:admin",
    "expired": lambda make_token, runner: _expired_token(make_token),
    "revoked": _revoked_token,
    "too-long": lambda make_token, runner: "idt_" + "a" * 200,
}
AUTH_PATHS = [("GET", "/v2/images"), ("POST", "/v2/images"), ("GET", "/v2/images/{id}"),
              ("GET", "/v2/images/{id}/file"), ("PUT", "/v2/images/{id}/file"), ("DELETE", "/v2/images/{id}"),
              ("GET", "/v2/images/{id}/members"), ("GET", "/v2/info/usage"), ("GET", "/v2/info/stores")]


@pytest.mark.parametrize("kind", list(BAD_TOKENS))
@pytest.mark.parametrize("method, path", AUTH_PATHS, ids=[f"{m} {p}" for m, p in AUTH_PATHS])
def test_bad_token_is_401_with_error_body(client, make_token, runner, headers, kind, method, path):
    image_id = create(client, headers["owner-member"])
    secret = BAD_TOKENS[kind](make_token, runner)
    hdrs = dict(JSON) if secret is None else {"X-Auth-Token": secret, **JSON}
    body = {"data": DATA, "content_type": OCTET} if path.endswith("/file") and method == "PUT" else {}
    if method == "POST":
        body = {"json": {"name": "x"}}
    response = client.open(path.format(id=image_id), method=method, headers=hdrs, **body)
    assert response.status_code == 401, response.data
    assert response.get_json() == {"message": "The request you have made requires authentication.",
                                   "code": "401 Unauthorized", "title": "Unauthorized"}
    assert image_row(client, headers, image_id)["status"] == "queued"
    assert len(listed_ids(client, headers["admin"], "&visibility=all")) == 1


def test_bad_token_error_is_plain_text_by_default(client):
    response = client.get("/v2/images", headers={"X-Auth-Token": "nope"})
    assert response.status_code == 401
    assert response.mimetype == "text/plain"
    assert response.get_data(as_text=True).startswith("401 Unauthorized")


def test_versions_need_no_token(client):
    assert client.get("/versions").status_code == 200
    assert client.get("/").status_code == 300


def test_token_is_percent_decoded_and_roles_are_lowercased(client, make_token):
    secret = make_token("p1", ("Member", "READER"))
    encoded = secret.replace("_", "%5F")
    response = client.post("/v2/images", json={"name": "x"}, headers={"X-Auth-Token": encoded})
    assert response.status_code == 201, response.data
    assert response.get_json()["owner"] == "p1"


def test_admin_role_in_any_case_is_admin(client, make_token, headers):
    image_id = make_image(client, headers, "private", active=True)
    assert client.post(f"/v2/images/{image_id}/actions/deactivate", headers=headers["admin"]).status_code == 204
    shouting = {"X-Auth-Token": make_token("ops2", ("Admin",))}
    assert client.get(f"/v2/images/{image_id}/file", headers=shouting).status_code == 200


def test_token_stored_only_as_hash(client, make_token):
    secret = make_token("p1")
    with database.connection_context():
        rows = list(Token.select())
    assert [row.token_hash for row in rows] == [hash_token(secret)]
    assert all(secret not in str(value) for row in rows for value in row.__data__.values())


# --------------------------------------------------------------------------- header spoofing in token mode


SPOOF = {"X-Roles": "admin", "X-Project-Id": "p1", "X-Tenant-Id": "p1", "X-User-Id": "root",
         "X-Identity-Status": "Confirmed", "X-Service-Roles": "admin", "X-Is-Admin-Project": "True"}


def test_spoofed_identity_headers_change_nothing(client, headers):
    spoof = {**headers["other-member"], **SPOOF}
    private = make_image(client, headers, "private", active=True)
    public_queued = make_image(client, headers, "public", active=False)
    for method, path in [("GET", f"/v2/images/{private}"), ("GET", f"/v2/images/{private}/file"),
                         ("DELETE", f"/v2/images/{private}")]:
        assert_error(client.open(path, method=method, headers=spoof), 404, private)
    assert_error(put_file(client, public_queued, spoof), 403)
    assert_error(client.delete(f"/v2/images/{public_queued}", headers=spoof), 403)
    # Creating: the owner is the token's project, and publicizing still needs a real admin.
    assert_error(client.post("/v2/images", json={"visibility": "public"}, headers=spoof), 403)
    assert_error(client.post("/v2/images", json={"owner": "p1"}, headers=spoof), 403)
    created = client.post("/v2/images", json={"name": "mine"}, headers=spoof)
    assert created.status_code == 201 and created.get_json()["owner"] == "p2"
    assert private not in listed_ids(client, spoof, "&visibility=all")
    assert_error(client.get("/v2/info/stores/detail", headers=spoof), 403)
    assert image_row(client, headers, private)["status"] == "active"


def test_spoofed_headers_without_token_are_401(client):
    response = client.get("/v2/images", headers={**SPOOF, **JSON})
    assert_error(response, 401)


def test_spoofed_headers_on_reader_token_do_not_grant_member(client, headers):
    image_id = make_image(client, headers, "private", active=True)
    spoof = {**headers["owner-reader"], "X-Roles": "member,admin", "X-Identity-Status": "Confirmed"}
    assert_error(client.get(f"/v2/images/{image_id}/file", headers=spoof), 403)


def test_usage_reports_token_project_not_spoofed_one(client, headers, runner):
    assert runner.invoke(args=["quota", "set", "--project", "p1", "--image-count-total", "7"]).exit_code == 0
    assert runner.invoke(args=["quota", "set", "--project", "p2", "--image-count-total", "3"]).exit_code == 0
    spoof = {**headers["other-member"], **SPOOF}
    usage = client.get("/v2/info/usage", headers=spoof).get_json()["usage"]
    assert usage["image_count_total"]["limit"] == 3


# --------------------------------------------------------------------------- trusted-headers mode


def trusted(project="p1", roles="member,reader", status="Confirmed", **extra):
    hdrs = {"X-User-Id": f"u-{project}", "X-Project-Id": project, "X-Roles": roles, **JSON, **extra}
    if status is not None:
        hdrs["X-Identity-Status"] = status
    return hdrs


@with_env(IMAGEDATA_AUTH="trusted-headers")
def test_trusted_headers_identity(client):
    response = client.post("/v2/images", json={"name": "t", "disk_format": "raw", "container_format": "bare"},
                           headers=trusted("px"))
    assert response.status_code == 201, response.data
    image = response.get_json()
    assert image["owner"] == "px"
    assert client.get(f"/v2/images/{image['id']}", headers=trusted("py")).status_code == 404
    assert client.get(f"/v2/images/{image['id']}", headers=trusted("px", "reader")).status_code == 200
    assert_error(client.put(f"/v2/images/{image['id']}/file", data=b"x", content_type=OCTET,
                            headers=trusted("px", "reader")), 403)
    assert client.put(f"/v2/images/{image['id']}/file", data=b"x", content_type=OCTET,
                      headers=trusted("px")).status_code == 204
    assert client.get(f"/v2/images/{image['id']}/file", headers=trusted("zz", "Admin")).status_code == 200
    # X-Tenant-Id is the fallback for X-Project-Id.
    fallback = trusted("px")
    del fallback["X-Project-Id"]
    fallback["X-Tenant-Id"] = "px"
    assert client.get(f"/v2/images/{image['id']}/file", headers=fallback).status_code == 200


@with_env(IMAGEDATA_AUTH="trusted-headers")
@pytest.mark.parametrize("status", [None, "Invalid", "confirmed", ""])
def test_trusted_headers_need_confirmed(client, status):
    response = client.get("/v2/images", headers=trusted("p1", "admin", status=status))
    assert_error(response, 401)
    assert_error(client.put(f"/v2/images/{'0' * 8}-0000-0000-0000-{'0' * 12}/file", data=b"x",
                            content_type=OCTET, headers=trusted("p1", "admin", status=status)), 401)


@with_env(IMAGEDATA_AUTH="trusted-headers")
def test_trusted_headers_mode_ignores_tokens(client, make_token):
    secret = make_token("p1", ("admin",))
    assert_error(client.get("/v2/images", headers={"X-Auth-Token": secret, **JSON}), 401)


@with_env(IMAGEDATA_AUTH="trusted-headers")
def test_trusted_headers_without_roles_cannot_list(client):
    assert_error(client.get("/v2/images", headers=trusted("p1", "")), 403)


# --------------------------------------------------------------------------- noauth mode


@pytest.mark.parametrize("bind", ["0.0.0.0:9292", "10.0.0.1:9292", "[::]:9292", "127.0.0.1:9292,0.0.0.0:9293",
                                  "example.org:9292", ":9292"])
def test_noauth_refuses_non_loopback_bind(tmp_path, bind):
    with pytest.raises(ConfigError, match="noauth"):
        create_app(make_env(tmp_path, IMAGEDATA_AUTH="noauth", IMAGEDATA_BIND=bind))


@pytest.mark.parametrize("bind", ["127.0.0.1:9292", "localhost:9292", "[::1]:9292", "127.0.0.2:80", None])
def test_noauth_allows_loopback_bind(tmp_path, db_url, bind):
    extra = {"IMAGEDATA_AUTH": "noauth", "IMAGEDATA_DATABASE_URL": db_url}
    if bind is not None:
        extra["IMAGEDATA_BIND"] = bind
    application = create_app(make_env(tmp_path, **extra))
    prepare_database(db_url)
    try:
        client = application.test_client()
        created = client.post("/v2/images", json={"name": "n", "visibility": "public",
                                                   "disk_format": "raw", "container_format": "bare"})
        assert created.status_code == 201, created.data
        image = created.get_json()
        assert image["owner"] == "local"
        assert client.put(f"/v2/images/{image['id']}/file", data=b"abc", content_type=OCTET).status_code == 204
        assert client.get(f"/v2/images/{image['id']}/file").data == b"abc"
        assert client.get("/v2/info/stores/detail").status_code == 200
    finally:
        close_pool()


def test_unknown_auth_mode_is_config_error(tmp_path):
    with pytest.raises(ConfigError, match="IMAGEDATA_AUTH"):
        create_app(make_env(tmp_path, IMAGEDATA_AUTH="keystone"))


def test_image_rows_untouched_by_matrix_helpers(client, headers):
    """Sanity: the helpers build exactly the state they claim (shared with p2, pending)."""
    image_id = make_image(client, headers, "shared-pending", active=True)
    with database.connection_context():
        assert Image.get_by_id(image_id).status == "active"
    members = client.get(f"/v2/images/{image_id}/members", headers=headers["owner-member"]).get_json()["members"]
    assert [(m["member_id"], m["status"]) for m in members] == [("p2", "pending")]


# --------------------------------------------------------------------------- implied roles


@pytest.mark.parametrize("roles, show, upload, download", [
    (("admin",), 200, 204, 200),     # admin => member => reader
    (("member",), 200, 204, 200),    # member => reader
    (("reader",), 200, 403, 403),
    (("service",), 404, 404, 404),   # service implies nothing for images
    (("ReAdEr", "MEMBER"), 200, 204, 200),
])
def test_roles_expand_admin_member_reader(client, make_token, headers, roles, show, upload, download):
    caller = {"X-Auth-Token": make_token("p1", roles), **JSON}
    image_id = create(client, headers["owner-member"], visibility="private")
    assert client.get(f"/v2/images/{image_id}", headers=caller).status_code == show
    assert put_file(client, image_id, caller).status_code == upload
    if upload != 204:
        assert put_file(client, image_id, headers["owner-member"]).status_code == 204
    assert client.get(f"/v2/images/{image_id}/file", headers=caller).status_code == download


# --------------------------------------------------------------------------- a caller without a project


@with_env(IMAGEDATA_AUTH="trusted-headers")
def test_projectless_caller_sees_only_public_images(client):
    p1 = trusted("p1")
    private = client.post("/v2/images", json={"name": "a", "visibility": "private"}, headers=p1).get_json()["id"]
    shared = client.post("/v2/images", json={"name": "b"}, headers=p1).get_json()["id"]
    public = client.post("/v2/images", json={"name": "c", "visibility": "public"},
                         headers=trusted("ops", "admin")).get_json()["id"]
    nobody = {"X-User-Id": "u0", "X-Roles": "member,reader", "X-Identity-Status": "Confirmed", **JSON}
    listing = client.get("/v2/images", headers=nobody)
    assert listing.status_code == 200, listing.data
    assert {image["id"] for image in listing.get_json()["images"]} == {public}
    assert client.get(f"/v2/images/{private}", headers=nobody).status_code == 404
    assert client.get(f"/v2/images/{shared}", headers=nobody).status_code == 404
    assert client.get(f"/v2/images/{public}", headers=nobody).status_code == 200
