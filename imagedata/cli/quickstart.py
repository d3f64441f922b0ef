"""Printed by `make run`: the README's second step, for the address the server binds.

``STEP_TWO`` is the README's quick-start block, word for word, with ``{api}`` for the URL
(``tests/ops/test_first_hour.py`` checks that the two agree).
"""
import os

STEP_TWO = """\
API=http://{api}
TOKEN=$(.venv/bin/imagedata token create --project demo | tail -1)
WORK=$(mktemp -d)
qemu-img create -f qcow2 $WORK/disk.qcow2 1G
ID=$(curl -s -H "X-Auth-Token: $TOKEN" -H "Content-Type: application/json" \\
     -d '{{"name": "first", "disk_format": "qcow2", "container_format": "bare"}}' \\
     $API/v2/images | python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
curl -i -T $WORK/disk.qcow2 -H "X-Auth-Token: $TOKEN" -H "Content-Type: application/octet-stream" \\
     $API/v2/images/$ID/file
curl -s -H "X-Auth-Token: $TOKEN" $API/v2/images/$ID | python3 -m json.tool
curl -s -H "X-Auth-Token: $TOKEN" -o $WORK/copy.qcow2 $API/v2/images/$ID/file
cmp $WORK/disk.qcow2 $WORK/copy.qcow2 && echo "same bytes"
"""


def text(bind: str, data_dir: str) -> str:
    """What `make run` prints before gunicorn starts."""
    api = bind.split(",")[0]
    commands = "".join(f"  {line}\n" for line in STEP_TWO.format(api=api).splitlines())
    return (f"\nimagedata is starting on http://{api}  (data: {data_dir})\n\n"
            f"In another shell, in this folder (README.rst, quick start, step 2):\n\n{commands}\n"
            "Stop the server with Ctrl-C.\n")


if __name__ == "__main__":
    print(text(os.environ.get("IMAGEDATA_BIND", "127.0.0.1:9292"), os.environ.get("IMAGEDATA_DATA_DIR", "./var")),
          flush=True)
