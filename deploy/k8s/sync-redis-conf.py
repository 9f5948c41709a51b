#!/usr/bin/env python3
"""Copy deploy/redis.conf into the ConfigMap in deploy/k8s/redis.yaml (run after editing it).

The ConfigMap is inline so `kubectl apply -k deploy/k8s` needs no file outside this directory
(kustomize refuses those by default); tests/test_deploy_files.py checks the two are identical.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONF = HERE.parent / "redis.conf"
MANIFEST = HERE / "redis.yaml"
START = "  redis.conf: |\n"
END = "---\n"


def render(manifest: str, conf: str) -> str:
    """The manifest with the ConfigMap's redis.conf block replaced by `conf`, indented."""
    head, sep, rest = manifest.partition(START)
    if not sep:
        raise SystemExit(f"{MANIFEST}: no '{START.strip()}' block")
    _, end, tail = rest.partition(END)
    body = "".join(f"    {line}" if line.strip() else "\n" for line in conf.splitlines(True))
    return head + START + body + end + tail


def main() -> int:
    old = MANIFEST.read_text()
    new = render(old, CONF.read_text())
    if new != old:
        MANIFEST.write_text(new)
        print(f"updated {MANIFEST}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
