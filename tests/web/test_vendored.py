"""The dashboard's vendored scripts and styles are exactly the published files the manifest
names (package, version, licence, sha256), and every vendored file is in it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import kakin.web

VENDOR = Path(kakin.web.__file__).parent / "static" / "vendor"


def test_vendored_files_match_their_manifest() -> None:
    manifest = json.loads((VENDOR / "MANIFEST.json").read_text())["files"]
    on_disk = {p.name for p in VENDOR.iterdir() if p.name != "MANIFEST.json"}
    assert on_disk == set(manifest), "every vendored file is in the manifest, and only those"
    for name, entry in manifest.items():
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == entry["sha256"], name
        assert entry["package"] and entry["version"] and entry["license"]
        assert entry["license_file"] in manifest, f"{name}: its licence travels with it"
    assert manifest["htmx.min.js"]["version"].startswith("2.0.")
