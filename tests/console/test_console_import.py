"""Import from the console in a real browser: a new image fetched from a URL (web-download),
its task followed on the image's page until it is active, then an admin's copy of it into
another store (copy-image); the bytes are checked through the API, never by the page alone."""
from __future__ import annotations

import hashlib
import os
import time

import pytest
import requests

from tests.console.pages import MIB, api_image, images_named, sign_in, start_stack

pytestmark = pytest.mark.e2e
DATA = os.urandom(24 * MIB)


@pytest.fixture(scope="module")
def stack(tmp_path_factory, origin):
    server, proxy = start_stack(tmp_path_factory.mktemp("console-import"),
                                IMAGEDATA_WEB_DOWNLOAD_ALLOWED_HOSTS=f"127.0.0.1:{origin.port}")
    yield server, f"http://127.0.0.1:{proxy.port}"
    proxy.stop()
    server.stop()


def wait_for(check, what: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, what
        time.sleep(0.2)
    return found


def test_import_from_a_url_then_copy_to_another_store(browser, stack, origin, shots):
    server, base = stack
    origin.configure(DATA, stall_after=8 * MIB, stall_ends_short=True)  # the page shows the running task
    token, admin = server.token("p1"), server.token("ops", "admin")
    page = sign_in(browser, base, token)
    page.get_by_role("button", name="Import from a URL").click()
    # a URL the service may not fetch: the message says why, and no image is left behind
    page.get_by_label("URL").fill("http://127.0.0.1:1/disk.qcow2")
    page.get_by_label("URL").dispatch_event("change")
    assert page.get_by_label("Name", exact=True).input_value() == "disk.qcow2"  # from the URL
    assert page.get_by_label("Disk format").input_value() == "qcow2"
    page.get_by_role("button", name="Import", exact=True).click()
    page.get_by_role("alert").filter(has_text="IMAGEDATA_WEB_DOWNLOAD_ALLOWED_HOSTS").wait_for()
    wait_for(lambda: images_named(server, token, "disk.qcow2") == [], "the refused import left its image")

    page.get_by_label("URL").fill(origin.url())
    page.get_by_label("Name", exact=True).fill("from-the-web")
    page.get_by_label("Disk format").select_option("raw")
    page.get_by_role("button", name="Import", exact=True).click()
    page.get_by_role("heading", name="from-the-web").wait_for()
    tasks = page.get_by_role("region", name="Import tasks")
    tasks.locator("tr[data-status=processing]").get_by_role("cell", name="web-download").wait_for()
    shots.take(page, "import-running")
    [image] = images_named(server, token, "from-the-web")
    assert image["status"] == "importing"
    # the import's reserved properties are shown but cannot be edited or removed
    assert page.get_by_label("Value of os_glance_importing_to_stores").is_disabled()
    assert page.get_by_role("button", name="Remove property os_glance_import_task").count() == 0
    origin.configure(DATA)  # the server sends the rest: the download resumes where it stopped
    tasks.locator("tr[data-status=success]").wait_for(timeout=60_000)
    page.get_by_text("active", exact=True).first.wait_for()  # the page was drawn again when it ended
    image = api_image(server, token, image["id"])
    assert (image["status"], image["size"], image["stores"]) == ("active", len(DATA), "local")
    assert image["os_hash_value"] == hashlib.sha512(DATA).hexdigest()
    assert page.errors == []

    # copy-image is for admins: the owner's page has no Copy form, an admin's has
    assert page.get_by_role("button", name="Copy").count() == 0
    admin_page = sign_in(browser, base, admin)
    admin_page.goto(f"{base}/console/#/image/{image['id']}")
    admin_page.get_by_label("Copy to store").select_option("slow")
    admin_page.get_by_role("button", name="Copy").click()
    wait_for(lambda: api_image(server, token, image["id"])["stores"] == "local,slow", "the copy did not end")
    admin_page.get_by_role("region", name="Import tasks").get_by_role("cell", name="copy-image").wait_for()
    shots.take(admin_page, "import-copied")
    response = requests.get(f"{server.url}/v2/images/{image['id']}/file", params={"prefer": "slow"},
                            headers={"X-Auth-Token": token}, timeout=60)
    assert response.status_code == 200 and response.content == DATA
    assert admin_page.errors == []
