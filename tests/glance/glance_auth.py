"""A paste filter that lets the real Glance run without Keystone, for the tests (loopback only).

Imported by Glance's gunicorn from the Glance virtualenv (it imports glance, not imagedata).
The request names its own identity in ``X-Auth-Token: <user>:<project>:<role>[,<role>...]``
(percent-encoded or not: glanceclient encodes the colons). Roles are expanded as Keystone's
default implied roles are (admin -> member -> reader); ``admin`` makes the context an admin
one. A missing or malformed token is answered 401, as keystonemiddleware would. Nothing is
verified: this is a test identity, never a secret.
"""
import urllib.parse

import webob.exc

import glance.context
from glance.api import policy
from glance.api.middleware.context import BaseContextMiddleware

IMPLIED = {"admin": ("member", "reader"), "member": ("reader",)}


def identity_of(token):
    """(user, project, roles) named by a test token; ValueError when it has another shape."""
    parts = [part.strip() for part in urllib.parse.unquote(token).split(":")]
    if len(parts) != 3 or not parts[0] or not parts[1] or not parts[2]:
        raise ValueError("X-Auth-Token must be <user>:<project>:<role>[,<role>...]")
    roles, todo = [], [role.strip().lower() for role in parts[2].split(",") if role.strip()]
    while todo:
        role = todo.pop(0)
        if role not in roles:
            roles.append(role)
            todo.extend(IMPLIED.get(role, ()))
    return parts[0], parts[1], roles


class TestTokenContext(BaseContextMiddleware):
    """Glance's request context from a test token."""

    def __init__(self, app):
        self.policy_enforcer = policy.Enforcer()
        super().__init__(app)

    def process_request(self, req):
        """Attach the caller's context, or answer 401."""
        try:
            user, project, roles = identity_of(req.headers.get("X-Auth-Token", ""))
        except ValueError as exc:
            return webob.exc.HTTPUnauthorized(explanation=str(exc))
        req.context = glance.context.RequestContext(
            auth_token=req.headers["X-Auth-Token"], user_id=user, project_id=project, roles=roles,
            is_admin="admin" in roles, policy_enforcer=self.policy_enforcer)
        return None
