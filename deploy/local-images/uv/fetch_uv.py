"""Download uv's manylinux wheel of VERSION from PyPI, check its sha256, extract uv and uvx.

    python3 fetch_uv.py VERSION OUTDIR

The wheel is found in PyPI's simple index (PEP 691 JSON), the interface pip and uv use.
"""

import hashlib
import json
import platform
import sys
import urllib.request
import zipfile
from pathlib import Path

version, out = sys.argv[1], Path(sys.argv[2])
machine = {"x86_64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}[platform.machine()]
index = urllib.request.Request(
    "https://pypi.org/simple/uv/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
)
with urllib.request.urlopen(index, timeout=60) as response:
    files = json.load(response)["files"]
wheels = [
    f
    for f in files
    if f["filename"].startswith(f"uv-{version}-py3-none-manylinux")
    and f["filename"].endswith(f"_{machine}.whl")
    and not f.get("yanked")
]
if not wheels:
    sys.exit(f"no manylinux {machine} wheel of uv {version} on PyPI")
wheel = wheels[0]
with urllib.request.urlopen(wheel["url"], timeout=300) as response:
    data = response.read()
digest = hashlib.sha256(data).hexdigest()
if digest != wheel["hashes"]["sha256"]:
    sys.exit(f"{wheel['filename']}: sha256 {digest} is not PyPI's {wheel['hashes']['sha256']}")
out.mkdir(parents=True, exist_ok=True)
wheel_path = out / wheel["filename"]
wheel_path.write_bytes(data)
with zipfile.ZipFile(wheel_path) as archive:
    for name in ("uv", "uvx"):
        member = f"uv-{version}.data/scripts/{name}"
        target = out / name
        target.write_bytes(archive.read(member))
        target.chmod(0o755)
wheel_path.unlink()
print(f"uv {version}: {wheel['filename']} ({digest[:12]})")
