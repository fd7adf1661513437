#!/usr/bin/env python3
"""Writes digest.json: preimages and digests computed independently of lamina's Rust code.

The layout follows the specification at the top of src/digest.rs, read from that text alone.
Run with a Python that has the `blake3` package:  python3 make_digest_vectors.py > digest.json
"""
import json
import struct
import sys

from blake3 import blake3

DIGEST_FORMAT = 1
KINDS = {"dir": 1, "file": 2, "symlink": 3}


def framed(text):
    data = text.encode("utf-8")
    return struct.pack("<I", len(data)) + data


def preimage(entries, pack_format):
    out = b"lamina-digest\x00" + struct.pack("<I", DIGEST_FORMAT) + framed(pack_format)
    out += struct.pack("<Q", len(entries))
    for entry in sorted(entries, key=lambda e: e["path"].encode("utf-8")):
        out += bytes([KINDS[entry["kind"]]]) + framed(entry["path"])
        out += struct.pack("<I", entry["mode"])
        if entry["kind"] == "file":
            content = entry["content"].encode("utf-8")
            out += struct.pack("<Q", len(content)) + blake3(content).digest()
        elif entry["kind"] == "symlink":
            out += framed(entry["target"])
    return out


CASES = [
    {"name": "empty", "pack_format": "zip-v1 deflate zlib-rs level-6", "entries": []},
    {
        "name": "one file",
        "pack_format": "zip-v1 deflate zlib-rs level-6",
        "entries": [{"kind": "file", "path": "nodejs/index.js", "mode": 0o644, "content": "x"}],
    },
    {
        "name": "every kind, unicode and byte order",
        "pack_format": "zip-v1 deflate zlib-rs level-6",
        "entries": [
            {"kind": "dir", "path": "nodejs", "mode": 0o755},
            {"kind": "dir", "path": "nodejs/node_modules", "mode": 0o755},
            {"kind": "file", "path": "nodejs/node_modules/a/run.sh", "mode": 0o755,
             "content": "#!/bin/sh\necho hi\n"},
            {"kind": "symlink", "path": "nodejs/node_modules/.bin/run", "mode": 0o777,
             "target": "../a/run.sh"},
            {"kind": "file", "path": "nodejs/Z.txt", "mode": 0o644, "content": ""},
            {"kind": "file", "path": "config/caf\u00e9.json", "mode": 0o644, "content": "{}"},
        ],
    },
    {
        "name": "another pack format",
        "pack_format": "zip-v2 test",
        "entries": [{"kind": "file", "path": "a", "mode": 0o644, "content": "x"}],
    },
]


def main():
    vectors = []
    for case in CASES:
        image = preimage(case["entries"], case["pack_format"])
        vectors.append({**case, "preimage_hex": image.hex(), "digest": blake3(image).hexdigest()})
    json.dump(vectors, sys.stdout, indent=1, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
