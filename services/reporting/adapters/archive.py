"""Finished report files on local disk, kept an hour so a retry with the same request id streams the same file."""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import tempfile
import time
from collections.abc import Iterator

from services.reporting.ports import ReportFile

__all__ = ["CHUNK_BYTES", "FileArchive"]

CHUNK_BYTES = 256 * 1024


def digest(path: pathlib.Path) -> tuple[int, str]:
    """(size, SHA-256 hex) of a file, read in chunks."""
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return size, h.hexdigest()


class FileArchive:
    """Report files in a directory, keyed by (user, request id), expiring after ``ttl_seconds``.

    Blocking file operations: call from a thread.
    """

    def __init__(self, directory: str | os.PathLike[str] | None = None, *, ttl_seconds: float = 3600.0) -> None:
        """Use ``directory`` (created if missing; a private temporary directory when None)."""
        self.directory = pathlib.Path(directory) if directory else pathlib.Path(tempfile.mkdtemp(prefix="tastyplat-reports-"))
        self.directory.mkdir(parents=True, exist_ok=True)
        self.ttl_seconds = ttl_seconds

    def _key(self, user_id: str, request_id: str) -> str:
        return hashlib.sha256(f"{user_id}\0{request_id}".encode()).hexdigest()

    def scratch(self, suffix: str) -> pathlib.Path:
        """A new file path to build a report into."""
        fd, name = tempfile.mkstemp(prefix="building-", suffix=suffix, dir=self.directory)
        os.close(fd)
        return pathlib.Path(name)

    def digest(self, path: pathlib.Path) -> tuple[int, str]:
        """(size, SHA-256 hex) of a built file."""
        return digest(path)

    def chunks(self, report: ReportFile, size: int = CHUNK_BYTES) -> Iterator[bytes]:
        """Read the file in chunks."""
        with report.path.open("rb") as handle:
            while chunk := handle.read(size):
                yield chunk

    def discard(self, report: ReportFile) -> None:
        """Delete a file the archive does not keep."""
        if not report.keep:
            report.path.unlink(missing_ok=True)

    def sweep(self) -> None:
        """Delete expired reports and abandoned scratch files."""
        cutoff = time.time() - self.ttl_seconds
        for path in self.directory.iterdir():
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink(missing_ok=True)
            except FileNotFoundError:
                continue

    def find(self, user_id: str, request_id: str) -> ReportFile | None:
        """The report this user built with this request id within the hour, or None."""
        key = self._key(user_id, request_id)
        meta_path = self.directory / f"{key}.json"
        try:
            meta = json.loads(meta_path.read_text())
        except (FileNotFoundError, ValueError):
            return None
        if meta["created"] < time.time() - self.ttl_seconds:
            return None
        path = self.directory / f"{key}.bin"
        if not path.exists():
            return None
        return ReportFile(path, bytes.fromhex(meta["metadata"]), meta["size"], meta["sha256"], meta["rows"],
                          meta["content_type"], meta["file_name"], True)

    def keep(self, user_id: str, request_id: str, report: ReportFile) -> ReportFile:
        """Move a finished report into the archive under (user, request id)."""
        key = self._key(user_id, request_id)
        path = self.directory / f"{key}.bin"
        os.replace(report.path, path)
        meta = {
            "created": time.time(), "metadata": report.metadata.hex(), "size": report.size_bytes, "sha256": report.sha256,
            "rows": report.row_count, "content_type": report.content_type, "file_name": report.file_name,
        }
        tmp = self.directory / f"{key}.json.tmp"
        tmp.write_text(json.dumps(meta))
        os.replace(tmp, self.directory / f"{key}.json")
        return ReportFile(path, report.metadata, report.size_bytes, report.sha256, report.row_count,
                          report.content_type, report.file_name, True)
