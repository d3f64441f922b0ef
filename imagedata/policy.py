"""Who may do what: the caller, image visibility, and a small readable rule table.

Rules are boolean expressions over a few words, so an operator can override one
with ``IMAGEDATA_POLICY="upload_image=admin; download_image=admin or member"``:

  admin      the caller has the admin role
  member     the caller has the member role      reader   the reader role
  service    the caller has the service role
  owner      the caller's project owns the image (or the metadata definition namespace)
  visible    the image (or namespace) is visible to the caller (see ``is_visible``)
  image_member  the caller's project is a member of the (shared) image
  true / false
"""
from __future__ import annotations

import dataclasses
import re

from imagedata.errors import Forbidden, ImageNotFound

# Keystone's default implied roles: admin implies member, member implies reader.
IMPLIED_ROLES = {"admin": {"member", "reader"}, "member": {"reader"}}

DEFAULT_RULES = {
    "get_image": "admin or (reader and visible)",
    "get_images": "admin or reader",
    "add_image": "admin or member",
    "modify_image": "admin or (member and owner)",
    "delete_image": "admin or (member and owner)",
    "deactivate": "admin or (member and owner)",
    "reactivate": "admin or (member and owner)",
    "upload_image": "admin or (member and owner)",
    "import_image": "admin or (member and owner)",  # glance-direct and web-download
    "copy_image": "admin",  # Glance: copy-image is admin-only by default
    "delete_image_location": "admin",  # DELETE /v2/stores/{store}/{image}: remove one copy
    "download_image": "admin or (member and visible)",
    "publicize_image": "admin",
    "communitize_image": "admin or (member and owner)",
    "set_owner": "admin",
    "add_member": "admin or (member and owner)",
    "delete_member": "admin or (member and owner)",
    "get_members": "admin or (reader and visible)",
    "modify_member": "admin or (member and image_member)",
    "stores_info_detail": "admin or service",
    "manage_quota": "admin",
    "manage_tokens": "admin",
    "tasks_api_access": "admin",
}

# Glance: metadata definitions are read by readers of the owning project or of any project when
# public, and written by admins only (Glance's default policy since Xena).
METADEF_READ = "admin or (reader and visible)"
METADEF_RULES = {
    "get_metadef_namespaces": "admin or reader",
    **{name: METADEF_READ for name in (
        "get_metadef_namespace", "get_metadef_objects", "get_metadef_object", "get_metadef_properties",
        "get_metadef_property", "get_metadef_tags", "get_metadef_tag", "list_metadef_resource_types",
        "get_metadef_resource_type")},
    **{name: "admin" for name in (
        "add_metadef_namespace", "modify_metadef_namespace", "delete_metadef_namespace", "add_metadef_object",
        "modify_metadef_object", "delete_metadef_object", "add_metadef_property", "modify_metadef_property",
        "remove_metadef_property", "add_metadef_tag", "add_metadef_tags", "modify_metadef_tag",
        "delete_metadef_tag", "delete_metadef_tags", "add_metadef_resource_type_association",
        "remove_metadef_resource_type_association")},
}
DEFAULT_RULES.update(METADEF_RULES)

DATA_ADMIN_ONLY_RULES = {"upload_image": "admin", "import_image": "admin", "download_image": "admin"}


@dataclasses.dataclass(frozen=True)
class Caller:
    """Who is calling: resolved once, at the start of the request."""

    user_id: str | None
    project_id: str | None
    roles: frozenset[str]

    @property
    def is_admin(self) -> bool:
        """True when the caller holds the admin role."""
        return "admin" in self.roles

    @classmethod
    def with_roles(cls, user_id: str | None, project_id: str | None, roles) -> "Caller":
        """A caller whose roles are lower-cased and expanded by the implied-role table."""
        expanded = set()
        for role in roles:
            role = role.strip().lower()
            if role:
                expanded.add(role)
                expanded |= IMPLIED_ROLES.get(role, set())
        return cls(user_id, project_id, frozenset(expanded))


def is_visible(caller: Caller, image, member_status: str | None) -> bool:
    """Whether the image exists for the caller at all (404 otherwise).

    ``member_status`` is the caller project's membership status on the image, or None.
    """
    if caller.is_admin or image.owner is None:
        return True
    if image.visibility in ("public", "community"):
        return True
    if caller.project_id is not None and image.owner == caller.project_id:
        return True
    # Glance: a pending or rejected member can still see a shared image.
    return image.visibility == "shared" and member_status is not None


_TOKEN_RE = re.compile(r"\s*(\(|\)|[a-z_]+)")


class Rule:
    """A compiled boolean rule expression."""

    def __init__(self, text: str):
        self.text = text
        self.tokens = _TOKEN_RE.findall(text)
        if "".join(self.tokens) != re.sub(r"\s+", "", text):
            raise ValueError(f"bad policy rule {text!r}")
        self.pos = 0
        self.tree = self._expr()
        if self.pos != len(self.tokens):
            raise ValueError(f"bad policy rule {text!r}")

    def _next(self):
        token = self.tokens[self.pos] if self.pos < len(self.tokens) else None
        self.pos += 1
        return token

    def _peek(self):
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _expr(self):
        node = self._term()
        while self._peek() == "or":
            self._next()
            node = ("or", node, self._term())
        return node

    def _term(self):
        node = self._factor()
        while self._peek() == "and":
            self._next()
            node = ("and", node, self._factor())
        return node

    def _factor(self):
        token = self._next()
        if token == "not":
            return ("not", self._factor())
        if token == "(":
            node = self._expr()
            if self._next() != ")":
                raise ValueError(f"bad policy rule {self.text!r}")
            return node
        if token in ATOMS:
            return ("atom", token)
        raise ValueError(f"bad policy rule {self.text!r}: unknown word {token!r}")

    def evaluate(self, facts: dict) -> bool:
        """Evaluate against a dict of atom -> bool."""
        return _eval(self.tree, facts)


ATOMS = {"admin", "member", "reader", "service", "owner", "visible", "image_member", "true", "false"}


def _eval(node, facts) -> bool:
    op = node[0]
    if op == "atom":
        return facts.get(node[1], False)
    if op == "not":
        return not _eval(node[1], facts)
    if op == "and":
        return _eval(node[1], facts) and _eval(node[2], facts)
    return _eval(node[1], facts) or _eval(node[2], facts)


class Policy:
    """The rule table in force, with the operator's overrides applied."""

    def __init__(self, overrides: dict[str, str] | None = None, data_admin_only: bool = False):
        texts = dict(DEFAULT_RULES)
        if data_admin_only:
            texts.update(DATA_ADMIN_ONLY_RULES)
        texts.update(overrides or {})
        self.rules = {name: Rule(text) for name, text in texts.items()}

    def allows(self, rule: str, caller: Caller, image=None, member_status: str | None = None) -> bool:
        """Whether ``caller`` passes ``rule`` for ``image`` (None for non-image rules)."""
        facts = _role_facts(caller)
        if image is not None:
            facts["owner"] = caller.project_id is not None and image.owner == caller.project_id
            facts["visible"] = is_visible(caller, image, member_status)
            facts["image_member"] = member_status is not None
        return self.rules[rule].evaluate(facts)

    def allows_metadef(self, rule: str, caller: Caller, namespace=None) -> bool:
        """Whether ``caller`` passes a metadata-definition ``rule`` for ``namespace``.

        Glance: without a namespace (a listing) the target is the caller's own project, so
        ``owner`` and ``visible`` hold.
        """
        facts = _role_facts(caller)
        if namespace is None:
            facts.update(owner=True, visible=True)
        else:  # a namespace has what the image facts read: an owner and a visibility
            facts["owner"] = caller.project_id is not None and namespace.owner == caller.project_id
            facts["visible"] = is_visible(caller, namespace, None)
        return self.rules[rule].evaluate(facts)

    def enforce(self, rule: str, caller: Caller, image=None, member_status: str | None = None,
                message: str | None = None) -> None:
        """Raise unless allowed: 404 when the caller may not even see the image, else 403."""
        if self.allows(rule, caller, image, member_status):
            return
        if image is not None and not self.allows("get_image", caller, image, member_status):
            raise ImageNotFound(image.id)
        raise Forbidden(message or f"You are not authorized to complete {rule} action.")


def _role_facts(caller: Caller) -> dict:
    """The facts every rule may read about the caller alone."""
    return {"true": True, "admin": caller.is_admin, "member": "member" in caller.roles,
            "reader": "reader" in caller.roles, "service": "service" in caller.roles}


def parse_overrides(text: str) -> dict[str, str]:
    """Parse ``name=expr; name2=expr2`` into a dict (validated by compiling)."""
    overrides = {}
    for part in filter(None, (p.strip() for p in (text or "").split(";"))):
        name, sep, expr = part.partition("=")
        name = name.strip()
        if not sep or name not in DEFAULT_RULES:
            raise ValueError(f"unknown policy rule {name!r}")
        Rule(expr)
        overrides[name] = expr.strip()
    return overrides
