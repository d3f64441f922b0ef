"""The console's Keystone sign-in: the service asks Keystone for a project-scoped token.

The browser sends the user name, password, project and domain once, to the service on its
own origin; the service posts them to Keystone's ``/v3/auth/tokens`` and answers the token
(which the console keeps in the tab's session storage). The password is never stored,
logged or sent back. Keystone is found through ``www_authenticate_uri`` of the
``[keystone_authtoken]`` section the service already reads.
"""
from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request

from imagedata.errors import BadRequest, ServiceUnavailable, Unauthorized

log = logging.getLogger(__name__)

TIMEOUT = 10
FIELDS = ("username", "password", "project", "domain")


def identity_url(config_path: str) -> str:
    """Keystone's public v3 URL, from the ``[keystone_authtoken]`` file of IMAGEDATA_KEYSTONE_CONFIG."""
    from imagedata.auth.keystone import read_section  # the keystone extra, present in this mode

    options = read_section(config_path)
    url = (options.get("www_authenticate_uri") or options["auth_url"]).rstrip("/")
    return url if url.endswith("/v3") else f"{url}/v3"


def check_form(form) -> dict[str, str]:
    """The four sign-in fields as strings (domain defaults to ``Default``); 400 otherwise."""
    if not isinstance(form, dict):
        raise BadRequest("Send a JSON object with username, password, project and domain.")
    values = {name: form.get(name) or ("Default" if name == "domain" else "") for name in FIELDS}
    missing = [name for name, value in values.items() if not isinstance(value, str) or not value.strip()]
    if missing:
        raise BadRequest(f"Fill in {', '.join(missing)} to sign in.")
    if any(len(value) > 255 for value in values.values()):
        raise BadRequest("A sign-in field is longer than 255 characters.")
    return values


def keystone_login(url: str, form: dict[str, str]) -> dict:
    """A new project-scoped token: ``{"token", "expires_at", "user", "project"}``."""
    domain = {"name": form["domain"].strip()}
    body = {"auth": {
        "identity": {"methods": ["password"],
                     "password": {"user": {"name": form["username"].strip(), "domain": domain,
                                           "password": form["password"]}}},
        "scope": {"project": {"name": form["project"].strip(), "domain": domain}}}}
    request = urllib.request.Request(f"{url}/auth/tokens", data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as answer:
            token = answer.headers.get("X-Subject-Token")
            document = json.load(answer)["token"]
    except urllib.error.HTTPError as exc:
        if exc.code in (400, 401, 403, 404):
            # As for every 401: a challenge (keystonemiddleware's own form), and why in the log.
            log.info("401 on the console's sign-in: Keystone answered %d for user %r in project %r (domain %r)",
                     exc.code, form["username"].strip(), form["project"].strip(), form["domain"].strip())
            raise Unauthorized("Keystone refused these credentials: check the user name, password, "
                               "project and domain.", headers={"WWW-Authenticate": f'Keystone uri="{url}"'}) from None
        raise ServiceUnavailable(f"Keystone answered {exc.code}; try again later.") from None
    except (OSError, ValueError, KeyError) as exc:
        raise ServiceUnavailable(f"Keystone could not be reached to sign in ({exc.__class__.__name__}); "
                                 "try again later.") from None
    if not token:
        raise ServiceUnavailable("Keystone answered without a token.")
    return {"token": token, "expires_at": document.get("expires_at"),
            "user": (document.get("user") or {}).get("name"), "project": (document.get("project") or {}).get("name")}
