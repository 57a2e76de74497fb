"""The log, as text for people or as one JSON object a line for log collectors
(``GRAPHQL_API_LOG_FORMAT``). Records written while a request runs carry its id."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from graphql_api.kernel.requests import current_request

TEXT_FORMAT = "%(levelname)s %(name)s: %(message)s"


def configure_logging(level: str, log_format: str) -> None:
    """Send every record (uvicorn's included) to stderr in ``log_format``."""
    handler = logging.StreamHandler()
    handler.addFilter(with_request_id)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


def with_request_id(record: logging.LogRecord) -> bool:
    """Give a record written while a request runs that request's id."""
    request = current_request()
    if request is not None and not hasattr(record, "request_id"):
        record.request_id = request.request_id
    return True


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    """What a record says beyond its message: the request line's ``fields``, if any."""
    return getattr(record, "fields", {})


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, the request's id and fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if hasattr(record, "request_id"):
            entry["request_id"] = record.request_id
        entry.update(fields_of(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """The plain format, the request line's fields appended as ``name=value``."""

    def format(self, record: logging.LogRecord) -> str:
        fields = " ".join(f"{name}={value}" for name, value in fields_of(record).items())
        text = super().format(record)
        return f"{text} {fields}" if fields else text
