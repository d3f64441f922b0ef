"""Printed by `make run`: how to get a token and a working curl upload and download."""
import os

BIND = os.environ.get("IMAGEDATA_BIND", "127.0.0.1:9292").split(",")[0]

TEXT = f"""
imagedata is starting on http://{BIND}  (data: {os.environ.get("IMAGEDATA_DATA_DIR", "./var")})

In another shell, from this folder:

  TOKEN=$(.venv/bin/imagedata token create --project demo --roles admin,member,reader | tail -1)
  E=http://{BIND}
  ID=$(curl -s -H "X-Auth-Token: $TOKEN" -H "Content-Type: application/json" \\
        -d '{{"name": "cirros", "disk_format": "raw", "container_format": "bare"}}' \\
        $E/v2/images | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  head -c 10485760 /dev/urandom > disk.raw
  curl -i -X PUT -H "X-Auth-Token: $TOKEN" -H "Content-Type: application/octet-stream" \\
        -H "X-Image-Meta-Store: archive" --data-binary @disk.raw $E/v2/images/$ID/file
  curl -s -H "X-Auth-Token: $TOKEN" $E/v2/images/$ID/file -o copy.raw && cmp disk.raw copy.raw && echo same bytes
  curl -s -H "X-Auth-Token: $TOKEN" $E/v2/info/stores

Stop the server with Ctrl-C.
"""

if __name__ == "__main__":
    print(TEXT, flush=True)
