"""Files without a shared disk: datasets fetched by content hash into a bounded cache, and a
run's checkpoint and model shipped back content-addressed, in chunks that resume.

Both directions stream (1 MiB reads, ``FILE_CHUNK`` uploads): no file is ever held whole in
memory. The dataset cache is the worker's ``datasets/`` folder, so the run's own check
(``jobs.datasets.ingest.verify_for_run``: inside that folder, hash, header bounds) runs on it
unchanged; least recently used files go first when it passes ``TRAINBOARD_CACHE_GB``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from jobs.remote.client import Client, Unreachable

READ = 2**20
FILE_CHUNK = 8 * 2**20


class FetchError(Exception):
    """A fetched file does not have the hash it was asked for by (it is deleted)."""


def cache_bytes() -> int:
    return int(float(os.environ.get("TRAINBOARD_CACHE_GB", "20")) * 2**30)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(READ), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(client: Client, url: str, dest: Path, sha: str, *, limit: int | None = None) -> Path:
    """GET ``url`` into ``dest`` through ``dest.part``, resuming a part left by an earlier,
    interrupted try with a Range request; the finished file must hash to ``sha``."""
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    r = client.request("GET", url, headers=headers, stream=True, timeout=(10, 60))
    if r.status_code == 200 and have:
        have = 0  # the server ignored the range: start over
    elif r.status_code not in (200, 206):
        raise Unreachable(f"{r.status_code} for {url}")
    got = 0
    try:
        with part.open("r+b" if have else "wb") as f:
            f.seek(have)
            f.truncate()
            for block in r.iter_content(READ):
                f.write(block)
                got += len(block)
                if limit is not None and got >= limit:  # test hook: cut the download here
                    raise Unreachable(f"download cut after {got} bytes")
    except OSError as e:
        raise Unreachable(str(e)) from e
    except Exception as e:
        if "requests" in type(e).__module__ or "urllib3" in type(e).__module__:
            raise Unreachable(str(e)) from e
        raise
    finally:
        r.close()
    if sha256_file(part) != sha:
        part.unlink()
        raise FetchError(f"{dest.name}: the downloaded bytes do not hash to {sha}")
    os.replace(part, dest)
    return dest


def cached_dataset(home: Path, sha: str, suffix: str) -> Path:
    return Path(home) / "datasets" / f"{sha}{suffix.lower()}"


def fetch_dataset(
    client: Client, home: Path, sha: str, suffix: str, size: int | None = None, *, limit=None
) -> Path:
    """The dataset with content hash ``sha``, from this worker's cache or the server."""
    dest = cached_dataset(home, sha, suffix)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_file():
        os.utime(dest)  # most recently used
        return dest
    evict(dest.parent, keep=dest, room=size or 0)
    return _download(client, f"/datasets/{sha}", dest, sha, limit=limit)


def evict(folder: Path, *, keep: Path, room: int) -> list[Path]:
    """Delete the least recently used cached datasets until ``room`` more bytes fit under
    the cache bound (a run that reads one has it open already: Linux keeps it readable)."""
    files = [p for p in folder.iterdir() if p.is_file() and p != keep and p.suffix != ".part"]
    files.sort(key=lambda p: p.stat().st_mtime)
    total = sum(p.stat().st_size for p in files)
    gone = []
    while files and total + room > cache_bytes():
        p = files.pop(0)
        total -= p.stat().st_size
        p.unlink(missing_ok=True)
        gone.append(p)
    return gone


def fetch_run_file(client: Client, folder: Path, run_id: int, name: str, sha: str) -> Path:
    """A file the server holds for the run (its checkpoint, for a resume here)."""
    dest = folder / name
    if dest.is_file() and sha256_file(dest) == sha:
        return dest
    folder.mkdir(parents=True, exist_ok=True)
    return _download(client, f"/runs/{run_id}/files/{name}", dest, sha)


def ship(client: Client, run_id: int, name: str, f, size: int) -> str:
    """Upload the open file ``f`` (``size`` bytes) content-addressed, resuming where an earlier
    try stopped, then put it into the run's folder on the server. Returns its hash."""
    digest = hashlib.sha256()
    f.seek(0)
    for block in iter(lambda: f.read(READ), b""):
        digest.update(block)
    sha = digest.hexdigest()
    state = client.request("GET", f"/blobs/{sha}").json()
    have = state["have"]
    while not state.get("complete"):
        f.seek(have)
        piece = f.read(min(FILE_CHUNK, size - have))
        r = client.request(
            "PUT", f"/blobs/{sha}", params={"offset": have, "size": size}, data=piece, timeout=60
        )
        state = r.json()
        have = state["have"]
    client.post(f"/runs/{run_id}/files", {"name": name, "sha256": sha})
    return sha
