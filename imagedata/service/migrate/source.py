"""The Glance being migrated from, through its Image API v2: listings, members and downloads.

Plain HTTP (http.client), one connection per request: a migration makes a few requests per
image and spends its time in the downloads, which stream. A download cut off midway is
continued with ``Range: bytes=N-`` (Glance answers 206 from byte N).
"""
from __future__ import annotations

import http.client
import json
import logging
import ssl
from typing import Callable, Iterator
from urllib.parse import urlencode, urlsplit

log = logging.getLogger(__name__)

PAGE_SIZE = 1000
TIMEOUT = 120.0
RESUME_ATTEMPTS = 5  # reconnections of one download that each made no progress


class SourceError(Exception):
    """Glance could not be read (an HTTP error, a refused token, a broken connection)."""


class SourceRefused(SourceError):
    """Glance answered with an error status (not worth asking again)."""


def image_api_root(url: str) -> str:
    """The root URL of a Glance endpoint given as ``--os-image-url`` takes it, or ending in /v2."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SourceError(f"{url!r} is not an http(s) URL of a Glance endpoint")
    path = parts.path.rstrip("/")
    for suffix in ("/v2", "/v2.0"):
        if path.endswith(suffix):
            path = path[: -len(suffix)]
    return f"{parts.scheme}://{parts.netloc}{path}"


class GlanceSource:
    """A Glance endpoint and a way to get a token for it (a fixed one, or keystoneauth's)."""

    def __init__(self, url: str, token: Callable[[], str], chunk_size: int = 1 << 20, timeout: float = TIMEOUT):
        self.root = image_api_root(url)
        self.token = token
        self.chunk_size = chunk_size
        self.timeout = timeout

    def _connection(self) -> http.client.HTTPConnection:
        parts = urlsplit(self.root)
        if parts.scheme == "https":
            return http.client.HTTPSConnection(parts.netloc, timeout=self.timeout,
                                               context=ssl.create_default_context())
        return http.client.HTTPConnection(parts.netloc, timeout=self.timeout)

    def _path(self, path: str) -> str:
        return urlsplit(self.root).path + path

    def request(self, path: str, headers: dict | None = None) -> http.client.HTTPResponse:
        """GET ``path`` (under the root); the open response, whatever its status."""
        conn = self._connection()
        try:
            conn.request("GET", self._path(path), headers={"X-Auth-Token": self.token(),
                                                           "Accept": "application/json", **(headers or {})})
            return conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise SourceError(f"GET {self.root}{path}: {exc}") from None

    def get_json(self, path: str) -> dict:
        """GET ``path`` and decode the JSON answer; SourceError for any status but 200."""
        response = self.request(path)
        try:
            body = response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise SourceError(f"GET {self.root}{path}: {exc}") from None
        finally:
            response.close()
        if response.status != 200:
            raise SourceRefused(f"GET {self.root}{path}: {response.status} {_short(body)}")
        try:
            return json.loads(body)
        except ValueError:
            raise SourceError(f"GET {self.root}{path}: the answer is not JSON") from None

    def list_images(self, owner: str | None = None) -> Iterator[dict]:
        """Every image an admin can see, each once: the listing with ``visibility=all`` (which
        includes community images), then the hidden ones, which need ``os_hidden=true``."""
        seen = set()
        for hidden in ("false", "true"):
            query = {"limit": PAGE_SIZE, "visibility": "all", "os_hidden": hidden, "sort": "created_at:asc"}
            if owner is not None:
                query["owner"] = owner
            path = "/v2/images?" + urlencode(query)
            while path:
                page = self.get_json(path)
                for image in page.get("images", []):
                    if image["id"] not in seen:
                        seen.add(image["id"])
                        yield image
                following = page.get("next")
                path = self._relative(following) if following else None

    def _relative(self, link: str) -> str:
        """A ``next`` link (``/v2/images?marker=...``) as a path under the root."""
        parts = urlsplit(link)
        path, root_path = parts.path, urlsplit(self.root).path
        if root_path and path.startswith(root_path + "/"):
            path = path[len(root_path):]
        return path + (f"?{parts.query}" if parts.query else "")

    def get_image(self, image_id: str) -> dict:
        """One image record."""
        return self.get_json(f"/v2/images/{image_id}")

    def list_members(self, image_id: str) -> list[dict]:
        """The members of a shared image (Glance answers 403 for any other visibility)."""
        return self.get_json(f"/v2/images/{image_id}/members").get("members", [])

    def download(self, image_id: str, on_resume: Callable[[int, str], None] = lambda o, r: None
                 ) -> Iterator[bytes]:
        """The image's bytes as Glance serves them, in pieces of at most ``chunk_size``; a broken
        connection is continued from the byte it stopped at (``on_resume(offset, reason)`` says so)."""
        offset, failures = 0, 0
        while True:
            try:
                for piece in self._ranged(image_id, offset):
                    offset += len(piece)
                    failures = 0
                    yield piece
                return
            except SourceRefused:
                raise
            except SourceError as exc:
                failures += 1
                if failures > RESUME_ATTEMPTS:
                    raise SourceError(f"the download failed at byte {offset}: {exc}") from None
                log.warning("download of image %s cut at byte %d (%s); continuing with Range", image_id, offset, exc)
                on_resume(offset, str(exc))

    def _ranged(self, image_id: str, offset: int) -> Iterator[bytes]:
        """One GET of the data from ``offset`` (a Range request unless it starts at 0)."""
        headers = {"Accept": "application/octet-stream"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        response = self.request(f"/v2/images/{image_id}/file", headers)
        try:
            if response.status == 204 or (response.status == 416 and offset):
                return  # Glance: an image without data; or the cut came after the last byte
            if response.status not in (200, 206):
                raise SourceRefused(f"GET data: {response.status} {_short(response.read(2000))}")
            skip = offset if response.status == 200 else 0  # a server that ignored the Range
            if response.status == 206 and not (response.getheader("Content-Range") or "").startswith(
                    f"bytes {offset}-"):
                raise SourceError(f"GET data: Content-Range {response.getheader('Content-Range')!r} "
                                  f"does not start at byte {offset}")
            while True:
                piece = response.read(self.chunk_size)
                if not piece:
                    return
                if skip:
                    cut = min(skip, len(piece))
                    piece, skip = piece[cut:], skip - cut
                    if not piece:
                        continue
                yield piece
        except (OSError, http.client.HTTPException) as exc:
            raise SourceError(str(exc) or type(exc).__name__) from None
        finally:
            response.close()


def _short(body: bytes) -> str:
    text = body.decode("utf-8", "replace")
    try:
        decoded = json.loads(text)
        text = decoded.get("message") or decoded.get("title") or text
    except (ValueError, AttributeError):
        pass
    return " ".join(text.split())[:300]
