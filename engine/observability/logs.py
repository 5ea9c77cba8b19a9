"""Log formats: readable text (the default, and `make run`'s) or one JSON object per line
(BATON_LOG_FORMAT=json), both with the ids of `context.LogContextFilter`."""

import json
import logging
from datetime import UTC, datetime

from .context import as_fields

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s%(context)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the ids (empty ones left out)
    and the traceback, if any."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({name: value for name, value in as_fields(record).items() if value})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str)
