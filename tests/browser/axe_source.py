"""The axe-core accessibility engine for the browser tests: the npm package, pinned and verified.

``python3 -m tests.browser.axe_source`` (run by ``make test``) downloads the pinned tarball
from the npm registry, checks it against the registry's ``dist.integrity`` and keeps only
``package/axe.min.js`` in the gitignored cache. Standard library only: CI has no node or npm.
"""

from __future__ import annotations

import base64
import hashlib
import io
import sys
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path

AXE_VERSION = "4.14.1"
AXE_INTEGRITY = "sha512-FHfa+lmNjQZfJz1q8wKqIDwC6DExcHt/pkjNQb09a3NPjCKg2rhu5qb2S4r76ASyFNNtuFooJpZe37OgudVGtQ=="
AXE_TARBALL_URL = f"https://registry.npmjs.org/axe-core/-/axe-core-{AXE_VERSION}.tgz"
AXE_JS = Path(__file__).resolve().parents[2] / ".cache" / "axe-core" / "axe.min.js"
FETCH_COMMAND = "make axe-core"
ATTEMPTS = 3


class AxeFetchError(Exception):
    """The pinned axe-core could not be downloaded or did not match its pinned integrity."""


def download(url: str, attempts: int = ATTEMPTS) -> bytes:
    """The body at ``url``; retried with a growing pause, since a registry fetch is sometimes flaky."""
    for attempt in range(1, attempts + 1):
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                return response.read()
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            permanent = isinstance(exc, urllib.error.HTTPError) and exc.code < 500  # a 404 stays a 404
            if permanent or attempt == attempts:
                raise AxeFetchError(f"could not download {url} after {attempt} attempt(s): {exc}") from exc
            print(f"axe-core: attempt {attempt} failed ({exc}); retrying", file=sys.stderr)
            time.sleep(2 * attempt)  # a back-off between network attempts, not a stand-in for an event
    raise AssertionError("unreachable")


def check_integrity(tarball: bytes, integrity: str = AXE_INTEGRITY) -> None:
    """Raise unless ``tarball`` matches the npm ``dist.integrity`` (``sha512-<base64>``)."""
    algorithm, _, expected = integrity.partition("-")
    actual = base64.b64encode(hashlib.new(algorithm, tarball).digest()).decode()
    if actual != expected:
        raise AxeFetchError(f"axe-core {AXE_VERSION} tarball integrity mismatch: "
                            f"expected {integrity}, got {algorithm}-{actual}")


def extract_axe(tarball: bytes) -> bytes:
    """``package/axe.min.js`` from the npm tarball (read as a member, never extracted to a path)."""
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        member = archive.extractfile("package/axe.min.js")
        if member is None:
            raise AxeFetchError("package/axe.min.js in the axe-core tarball is not a regular file")
        return member.read()


def fetch_axe(target: Path = AXE_JS) -> Path:
    """Download, verify and store the pinned ``axe.min.js`` at ``target`` (written whole or not at all)."""
    tarball = download(AXE_TARBALL_URL)
    check_integrity(tarball)
    source = extract_axe(tarball)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    partial.write_bytes(source)
    partial.replace(target)
    return target


def main() -> int:
    """Fetch axe-core into the cache; exit 1 with the reason when that fails."""
    try:
        path = fetch_axe()
    except (AxeFetchError, tarfile.TarError, KeyError, OSError) as exc:
        print(f"axe-core: {exc}", file=sys.stderr)
        return 1
    print(f"axe-core {AXE_VERSION}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
