"""A small real filesystem that can be filled to the last byte (for disk-full tests; needs root)."""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest


def mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return False
    return (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
        ).returncode
        == 0
    )


def small_disk(path: Path, size: str) -> Path:
    """Mount a tmpfs of `size` at `path` (pair with `unmount`), or skip the test without root."""
    if not mount_tmpfs(path, size):
        pytest.skip("needs root to mount a size-limited tmpfs")
    return path


def fill_to_the_last_byte(path: Path) -> int:
    """Write zeros until the filesystem answers ENOSPC, halving the chunk each time so the last
    free byte is taken too. Unbuffered `os.write`: a buffered file keeps the unwritten tail of a
    partial write and raises ENOSPC again when it is closed (that failed one CI run)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    written, chunk = 0, 1 << 16
    try:
        while chunk:
            try:
                written += os.write(fd, b"\0" * chunk)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                chunk //= 2
    finally:
        os.close(fd)
    return written


def unmount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)
