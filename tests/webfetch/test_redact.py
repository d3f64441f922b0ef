"""URLs as messages and logs show them."""
from __future__ import annotations

import pytest

from imagedata.service.webfetch import redact_url


@pytest.mark.parametrize("url,shown", [
    ("http://example.com/a.img", "http://example.com/a.img"),
    ("https://alice:s3cret@example.com/a.img", "https://***@example.com/a.img"),
    ("https://ghp_abcdef@example.com:8443/a", "https://***@example.com:8443/a"),
    ("http://a:b@c@example.com/x", "http://***@example.com/x"),
    ("https://s3.example/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F20260101&"
     "X-Amz-Signature=0123abcd&X-Amz-Security-Token=tok",
     "https://s3.example/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=***&X-Amz-Signature=***&"
     "X-Amz-Security-Token=***"),
    ("https://x.blob.core.windows.net/c/b?sv=2024-01-01&se=2026&sp=r&sig=abc%3D", 
     "https://x.blob.core.windows.net/c/b?sv=2024-01-01&se=2026&sp=r&sig=***"),
    ("http://e.com/f?api_key=1&access_token=2&password=3&auth=4&session=5&code=6&version=7",
     "http://e.com/f?api_key=***&access_token=***&password=***&auth=***&session=***&code=***&version=7"),
    ("http://e.com/f?id=" + "a1B2" * 10, "http://e.com/f?id=***"),
    ("http://e.com/f?" + "a1B2" * 10, "http://e.com/f?***"),
    ("http://e.com/f?name=cirros-0.6.2-x86_64-disk.img", "http://e.com/f?name=cirros-0.6.2-x86_64-disk.img"),
    ("http://e.com/f#access_token=xyz", "http://e.com/f#***"),
    ("http://e.com/a b\r\nX-Injected: 1", "http://e.com/a%20b%0D%0AX-Injected:%201"),
    ("http://u:p@[::1/x?token=1", "http://***@[::1/x?***"),
])
def test_redact_url(url, shown):
    assert redact_url(url) == shown
