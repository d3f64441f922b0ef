"""The console in a real browser (Debian's Chromium, headless): sign in, a 64 MiB upload that
survives a dropped connection and a page reload, the signed Download link, properties,
deactivation, delete, sharing between two projects' sessions, the admin pages."""
from __future__ import annotations

import hashlib
import time

import pytest
import requests

from tests.console.browser import PHONE
from tests.console.pages import (MIB, api_image, images_named, random_file, sign_in, start_stack, start_upload,
                                 upload_state, wait_done, wait_until_sent)

SIZE = 64 * MIB
RATE = 8 * MIB  # bytes per second through the proxy in the resume tests: 8 s for the whole file
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    server, proxy = start_stack(tmp_path_factory.mktemp("console"))
    yield server, proxy, f"http://127.0.0.1:{proxy.port}"
    proxy.stop()
    server.stop()


@pytest.fixture(scope="module")
def tokens(stack):
    server = stack[0]
    return {"p1": server.token("p1"), "p2": server.token("p2"), "admin": server.token("ops", "admin")}


@pytest.fixture(scope="module")
def disk(tmp_path_factory):
    return random_file(tmp_path_factory.mktemp("console-disk") / "disk.raw", SIZE)


@pytest.fixture
def throttled(stack):
    """The proxy at RATE, its byte count reset; back to full speed and up afterwards."""
    proxy = stack[1]
    proxy.rate, proxy.client_bytes, proxy.refusing = RATE, 0, False
    yield proxy
    proxy.rate, proxy.refusing = None, False


def test_upload_download_edit_deactivate_and_delete(browser, stack, tokens, disk, shots, tmp_path):
    server, _proxy, base = stack
    path, md5 = disk
    page = sign_in(browser, base, tokens["p1"])
    shots.take(page, "images-empty")
    start_upload(page, path, "debian-12")
    shots.take(page, "upload-progress")
    wait_done(page)
    [image] = images_named(server, tokens["p1"], "debian-12")
    assert (image["status"], image["size"], image["checksum"], image["disk_format"]) == ("active", SIZE, md5, "raw")
    page.get_by_role("link", name="Uploaded debian-12")
    page.reload()
    page.get_by_role("link", name="debian-12").first.click()
    page.get_by_role("heading", name="debian-12").wait_for()
    shots.take(page, "image-detail")

    download = page.get_by_role("link", name="Download")
    href = download.get_attribute("href")
    assert "token" not in href.lower() and tokens["p1"] not in href
    with page.expect_download() as pending:
        download.click()
    saved = tmp_path / "copy.raw"
    pending.value.save_as(saved)
    assert hashlib.md5(saved.read_bytes()).hexdigest() == md5

    page.get_by_label("Key", exact=True).fill("os_distro")
    page.get_by_label("Value", exact=True).fill("debian")
    page.get_by_role("button", name="Add property").click()
    page.get_by_label("Tags").fill("bookworm, amd64")
    page.get_by_role("button", name="Save").click()
    page.get_by_text("Saved.").wait_for()
    shown = api_image(server, tokens["p1"], image["id"])
    assert shown["os_distro"] == "debian" and sorted(shown["tags"]) == ["amd64", "bookworm"]
    page.get_by_label("Value of os_distro").fill("debian-12")
    page.get_by_role("button", name="Save").click()
    page.get_by_text("Saved.").wait_for()
    assert api_image(server, tokens["p1"], image["id"])["os_distro"] == "debian-12"

    link = f"{server.url}{href}"
    page.get_by_role("button", name="Deactivate").click()
    page.get_by_role("button", name="Reactivate").wait_for()
    assert api_image(server, tokens["p1"], image["id"])["status"] == "deactivated"
    assert requests.get(link, timeout=10).status_code == 403
    page.get_by_role("button", name="Reactivate").click()
    page.get_by_role("button", name="Deactivate").wait_for()
    assert requests.get(link, headers={"Range": "bytes=0-9"}, timeout=10).content == saved.read_bytes()[:10]

    page.get_by_role("button", name="Delete").click()
    dialog = page.get_by_role("dialog")
    shots.take(page, "delete-confirmation")
    dialog.get_by_role("button", name="Cancel").click()
    assert api_image(server, tokens["p1"], image["id"])["status"] == "active"
    page.get_by_role("button", name="Delete").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    page.get_by_text('Image "debian-12" deleted.').wait_for()
    assert requests.get(f"{server.url}/v2/images/{image['id']}", headers={"X-Auth-Token": tokens["p1"]},
                        timeout=10).status_code == 404
    assert requests.get(link, timeout=10).status_code == 404
    assert not page.errors


def test_a_dropped_connection_resumes_by_itself(browser, stack, tokens, disk, throttled, shots):
    server, proxy, base = stack
    path, md5 = disk
    page = sign_in(browser, base, tokens["p1"])
    start_upload(page, path, "dropped")
    wait_until_sent(page, 24 * MIB)
    proxy.refusing = True  # the link goes down: open connections reset, new ones refused
    proxy.cut()
    time.sleep(3)
    assert upload_state(page)["state"] == "reconnecting"
    shots.take(page, "upload-reconnecting")
    proxy.refusing = False
    back = time.monotonic()
    while upload_state(page)["state"] != "sending":
        assert time.monotonic() - back < 30, upload_state(page)
        time.sleep(0.1)
    resumed_after = time.monotonic() - back
    wait_done(page)
    [image] = images_named(server, tokens["p1"], "dropped")
    assert (image["status"], image["size"], image["checksum"]) == ("active", SIZE, md5)
    assert proxy.client_bytes < 1.3 * SIZE, (proxy.client_bytes, SIZE)
    print(f"resumed {resumed_after:.1f} s after the network came back; {proxy.client_bytes / SIZE:.2f}x the file sent")


def test_a_reloaded_page_continues_from_the_upload_offset(browser, stack, tokens, disk, throttled):
    server, proxy, base = stack
    path, md5 = disk
    page = sign_in(browser, base, tokens["p1"])
    start_upload(page, path, "reloaded")
    wait_until_sent(page, 24 * MIB)
    page.reload()  # the token stays in this tab's session storage
    page.get_by_role("heading", name="Images").wait_for()
    start_upload(page, path, "reloaded")
    page.get_by_text('Continuing the earlier upload of "reloaded"').wait_for()
    wait_done(page)
    [image] = images_named(server, tokens["p1"], "reloaded")
    assert (image["status"], image["size"], image["checksum"]) == ("active", SIZE, md5)
    assert proxy.client_bytes < 1.3 * SIZE, (proxy.client_bytes, SIZE)


def test_cancel_leaves_the_image_queued_with_its_bytes_kept(browser, stack, tokens, disk, throttled):
    server, proxy, base = stack
    page = sign_in(browser, base, tokens["p1"])
    start_upload(page, disk[0], "cancelled")
    wait_until_sent(page, 8 * MIB)
    page.get_by_role("button", name="Cancel upload of cancelled").click()
    page.get_by_text("Cancelled: the image stays queued").wait_for()
    [image] = images_named(server, tokens["p1"], "cancelled")
    deadline = time.monotonic() + 10
    while api_image(server, tokens["p1"], image["id"])["status"] != "queued":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    head = requests.head(f"{server.url}/v2/images/{image['id']}/file", headers={"X-Auth-Token": tokens["p1"]}, timeout=10)
    assert 0 < int(head.headers["Upload-Offset"]) < SIZE and head.headers["Upload-Length"] == str(SIZE)
    sent = proxy.client_bytes
    time.sleep(1)
    assert proxy.client_bytes - sent < MIB  # nothing more is sent


def test_share_with_another_project(browser, stack, tokens, shots):
    server, _proxy, base = stack
    owner = {"X-Auth-Token": tokens["p1"]}
    made = requests.post(f"{server.url}/v2/images", json={"name": "shared-one", "disk_format": "raw",
                                                          "container_format": "bare", "visibility": "shared"},
                         headers=owner, timeout=10).json()
    page = sign_in(browser, base, tokens["p1"])
    page.goto(f"{base}/console/#/image/{made['id']}")
    page.get_by_label("Member project").fill("p2")
    page.get_by_role("button", name="Add member").click()
    page.get_by_text("Shared with p2.").wait_for()
    shots.take(page, "image-members")
    other = sign_in(browser, base, tokens["p2"])
    assert other.get_by_role("link", name="shared-one").count() == 0  # pending: not listed yet
    other.get_by_role("link", name="Shared with me").click()
    other.get_by_role("button", name="Accept shared-one").click()
    other.get_by_text('Accepted "shared-one".').wait_for()
    shots.take(other, "shared-with-me")
    other.get_by_role("link", name="Images", exact=True).click()
    other.get_by_role("link", name="shared-one").wait_for()
    members = requests.get(f"{server.url}/v2/images/{made['id']}/members", headers=owner, timeout=10).json()
    assert [(m["member_id"], m["status"]) for m in members["members"]] == [("p2", "accepted")]


def test_admin_pages_and_a_phone_sized_screen(browser, stack, tokens, shots):
    server, _proxy, base = stack
    page = sign_in(browser, base, tokens["admin"])
    page.get_by_role("link", name="Admin").click()
    stores = page.get_by_role("region", name="Stores")
    stores.get_by_role("cell", name="local", exact=True).wait_for()
    assert "healthy" in stores.inner_text() and "GiB" in stores.inner_text()
    page.get_by_label("Quota project").fill("p1")
    page.get_by_label("Image count total").fill("50")
    page.get_by_role("button", name="Set quota").click()
    page.get_by_text("Quota of p1 set.").wait_for()
    assert "of 50" in page.get_by_role("region", name="Quotas").inner_text()
    page.get_by_label("Token project").fill("p3")
    page.get_by_role("button", name="Create token").click()
    page.get_by_text("New token").wait_for()
    shots.take(page, "admin")
    phone = sign_in(browser, base, tokens["p1"], viewport=PHONE)
    shots.take(phone, "images-phone")
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"] + 1, width  # nothing wider than the screen
