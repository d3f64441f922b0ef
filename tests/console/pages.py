"""What the browser tests do on the console's pages, by the labels and roles a person sees."""
from __future__ import annotations

import hashlib
import os
import time

import requests

from tests.console.browser import DESKTOP
from tests.e2e.proxy import Forwarder
from tests.e2e.server import Server

MIB = 1 << 20
LINK_SECRET = "console-tests-link-secret-0123456789abcdef"


def start_stack(root, **env) -> tuple[Server, Forwarder]:
    """A gunicorn server (short lease, so a cut upload is put aside quickly) and a proxy the
    test controls in front of it; the browser talks to the proxy only."""
    server = Server(root, IMAGEDATA_LINK_SECRET=LINK_SECRET, IMAGEDATA_UPLOAD_LEASE_SECONDS=12,
                    IMAGEDATA_UPLOAD_IDLE_TIMEOUT=10, **env).start()
    return server, Forwarder(server.port)


def random_file(path, size: int) -> tuple[str, str]:
    """A file of random bytes; returns its path and md5."""
    digest = hashlib.md5()
    with open(path, "wb") as f:
        for _ in range(size // MIB):
            block = os.urandom(MIB)
            digest.update(block)
            f.write(block)
    return str(path), digest.hexdigest()


def sign_in(browser, base: str, token: str, viewport=DESKTOP):
    """A new tab (fresh profile) signed in to the console with ``token``; returns the page."""
    context = browser.new_context(viewport=viewport, accept_downloads=True)
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.goto(f"{base}/console/")
    page.get_by_label("Token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Images").wait_for()
    return page


def start_upload(page, path: str, name: str):
    """Upload image -> Image file, Name, Upload; returns the upload's progress bar."""
    page.get_by_role("button", name="Upload image").click()
    page.get_by_label("Image file").set_input_files(path)
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_role("button", name="Upload", exact=True).click()
    progress = page.get_by_role("progressbar", name=f"Upload of {name}")
    progress.wait_for()
    return progress


def upload_state(page) -> dict:
    """The newest upload of the page: state, bytes the service has and bytes handed to the network."""
    return page.evaluate("(() => { const u = window.consoleUploads.at(-1);"
                         " return {state: u.state, sent: u.sent, size: u.size, message: u.message}; })()")


def wait_until_sent(page, at_least: int, timeout: float = 60) -> dict:
    """Wait until the newest upload has sent ``at_least`` bytes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = upload_state(page)
        if state["sent"] >= at_least or state["state"] in ("done", "failed"):
            return state
        time.sleep(0.1)
    raise AssertionError(f"the upload did not reach {at_least} bytes: {upload_state(page)}")


def wait_done(page, timeout: float = 120) -> None:
    """Wait until the newest upload is done (fail at once if it failed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = upload_state(page)
        if state["state"] == "done":
            return
        assert state["state"] != "failed", state
        time.sleep(0.2)
    raise AssertionError(f"the upload did not finish: {upload_state(page)}")


def api_image(server: Server, token: str, image_id: str) -> dict:
    """An image as the API shows it (straight to the server)."""
    return requests.get(f"{server.url}/v2/images/{image_id}", headers={"X-Auth-Token": token}, timeout=10).json()


def images_named(server: Server, token: str, name: str) -> list[dict]:
    """The images with this exact name."""
    return requests.get(f"{server.url}/v2/images", params={"name": name}, headers={"X-Auth-Token": token},
                        timeout=10).json()["images"]
