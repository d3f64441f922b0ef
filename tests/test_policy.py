"""The rule table: expression parsing, overrides, visibility and implied roles."""
import pytest

from imagedata.errors import Forbidden, ImageNotFound
from imagedata.models import Image
from imagedata.policy import Caller, Policy, Rule, is_visible, parse_overrides

OWNER = Caller.with_roles("u1", "p1", ["member"])
READER = Caller.with_roles("u2", "p1", ["reader"])
OTHER = Caller.with_roles("u3", "p2", ["member"])
ADMIN = Caller.with_roles("root", "ops", ["Admin"])


def image(visibility="private", owner="p1"):
    return Image(id="0f5e8a4c-1b2d-4e3f-9a8b-7c6d5e4f3a2b", owner=owner, visibility=visibility)


@pytest.mark.parametrize("text,facts,expected", [
    ("admin", {"admin": True}, True),
    ("admin or (member and owner)", {"member": True, "owner": True}, True),
    ("admin or (member and owner)", {"member": True}, False),
    ("not admin", {}, True),
    ("true", {"true": True}, True),
    ("reader and not member", {"reader": True, "member": True}, False),
])
def test_rule_expressions(text, facts, expected):
    assert Rule(text).evaluate(facts) is expected


@pytest.mark.parametrize("text", ["admin or", "(admin", "admin)", "root", "admin; drop", "", "admin and and member"])
def test_bad_rules_are_refused(text):
    with pytest.raises(ValueError):
        Rule(text)


def test_overrides_parse_and_validate():
    assert parse_overrides("upload_image=admin; download_image = admin or member") == {
        "upload_image": "admin", "download_image": "admin or member"}
    with pytest.raises(ValueError):
        parse_overrides("no_such_rule=admin")
    with pytest.raises(ValueError):
        parse_overrides("upload_image=admin or")


def test_implied_roles_and_case():
    assert ADMIN.is_admin and {"member", "reader"} <= ADMIN.roles
    assert OWNER.roles == {"member", "reader"}
    assert READER.roles == {"reader"}


@pytest.mark.parametrize("caller,visibility,member_status,visible", [
    (OTHER, "private", None, False), (OTHER, "shared", None, False), (OTHER, "shared", "pending", True),
    (OTHER, "shared", "rejected", True), (OTHER, "community", None, True), (OTHER, "public", None, True),
    (OWNER, "private", None, True), (ADMIN, "private", None, True),
])
def test_visibility(caller, visibility, member_status, visible):
    assert is_visible(caller, image(visibility), member_status) is visible


def test_invisible_is_404_visible_but_forbidden_is_403():
    policy = Policy()
    with pytest.raises(ImageNotFound):
        policy.enforce("upload_image", OTHER, image("private"))
    with pytest.raises(Forbidden):
        policy.enforce("upload_image", OTHER, image("public"))
    with pytest.raises(Forbidden):
        policy.enforce("download_image", READER, image("private"))
    policy.enforce("download_image", OWNER, image("private"))


def test_data_admin_only():
    policy = Policy(data_admin_only=True)
    assert not policy.allows("download_image", OWNER, image())
    assert policy.allows("download_image", ADMIN, image())
    assert policy.allows("get_image", OWNER, image())
