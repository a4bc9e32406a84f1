"""Worker logs: JSON lines for log collectors, text for people, never personal data or secrets.

``log_format`` (LEADFLOW_LOG_FORMAT) is ``auto`` (JSON when stderr is not a terminal: a
container, a service manager, `leadflow up`'s log file), ``json`` or ``text``. A JSON line
has ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, and ``lead_id`` /
``correlation_id`` when the record carries them: passed with ``extra=`` or set around the
work with ``log_context()``.

Every line passes through ``Redactor`` first: e-mail addresses, international phone numbers,
the values of name, phone, notes and secret-like fields, API keys (``lfk_…`` and the
configured client key) and the configured webhook secrets are replaced, in the message and
in tracebacks alike (a contract error's detail quotes the bad value).
"""

from __future__ import annotations

import contextlib
import logging
import logging.config
import re
import sys
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson

from streams.errors import ErrorCode, LeadflowError

FORMATS = ("auto", "json", "text")
CONTEXT_FIELDS = ("lead_id", "correlation_id")
TEXT_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] [%(name)s] %(message)s"

_lead_id: ContextVar[str | None] = ContextVar("leadflow_log_lead_id", default=None)
_correlation_id: ContextVar[str | None] = ContextVar("leadflow_log_correlation_id", default=None)


@contextlib.contextmanager
def log_context(*, lead_id: str | None = None, correlation_id: str | None = None) -> Iterator[None]:
    """Every record logged inside (in this task or thread) carries these ids."""
    tokens = [_lead_id.set(lead_id), _correlation_id.set(correlation_id)]
    try:
        yield
    finally:
        _correlation_id.reset(tokens[1])
        _lead_id.reset(tokens[0])


class ContextFilter(logging.Filter):
    """Copies the ids of ``log_context`` onto records that were not given them explicitly."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in (("lead_id", _lead_id), ("correlation_id", _correlation_id)):
            if getattr(record, name, None) is None:
                value = var.get()
                if value is not None:
                    setattr(record, name, value)
        return True


REDACTED = "<redacted>"  # not [..]: a list value in a dict repr must stay one value
_EMAIL = re.compile(
    r"[A-Za-z0-9._%+-][A-Za-z0-9._%+'-]*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
)
# "+1 415 555 0134", "(415) 555-0134", "020 7946 0958": grouped digits. A bare digit run is
# an offset or a timestamp far more often than a phone number, so it is left alone.
_PHONE = re.compile(
    r"\+\d[\d ().-]{5,}\d|\(\d{2,5}\)\s?\d{3,4}[ .-]\d{3,4}\b"
    r"|(?<![\w.:-])\d{3,5}[ .-]\d{3,4}[ .-]\d{3,4}(?![\w.:-])"
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")
_WEBHOOK_SECRET = re.compile(r"\bwhsec_[A-Za-z0-9+/=]+")
_API_KEY = re.compile(r"\blfk_[A-Za-z0-9_-]+")  # streams.access.keys.PREFIX
# A value: quoted, a list or tuple (a setting of several secrets), or up to a delimiter.
_VALUE = r"""("[^"]*"|'[^']*'|\[[^\]]*\]|\([^)]*\)|[^\s,;&})\]]+)"""
# key=value, key: value, "key": "value" and 'key': 'value' (dict reprs, JSON, query strings)
_SECRET_FIELD = re.compile(
    r"""(?i)((?<![\w.-])["']?[\w-]*(?:secret|password|passwd|token|api[_-]?key|authorization)s?["']?"""
    r"""\s*[:=]\s*)""" + _VALUE
)
_PERSONAL_FIELD = re.compile(
    r"""(?i)(?<![\w.-])(["']?(?:first|last|full|contact|given|family)[_-]?name["']?\s*[:=]\s*"""
    r"""|["']name["']\s*:\s*"""
    r"""|["']?(?:e[_-]?mail(?:[_-]?key)?|phone|mobile|sales[_-]?notes|notes)["']?"""
    r"""\s*[:=]\s*)""" + _VALUE
)


class Redactor:
    """Removes personal data and secrets from a line of log text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        literal = set()
        for secret in secrets:
            if secret:
                literal.add(secret)
                literal.add(secret.removeprefix("whsec_"))
        # Longest first, so a secret is never half-replaced by a shorter one inside it.
        self._literal = sorted((s for s in literal if len(s) >= 6), key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._literal:
            if secret in text:
                text = text.replace(secret, REDACTED)
        text = _WEBHOOK_SECRET.sub(REDACTED, text)
        text = _API_KEY.sub(REDACTED, text)
        text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
        text = _EMAIL.sub("<email>", text)
        text = _PHONE.sub("<phone>", text)
        text = _SECRET_FIELD.sub(lambda m: m.group(1) + REDACTED, text)
        return _PERSONAL_FIELD.sub(lambda m: m.group(1) + REDACTED, text)


class TextFormatter(logging.Formatter):
    """Faust's usual line, then the ids; redacted."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__(TEXT_FORMAT)
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = " ".join(
            f"{name}={value}" for name in CONTEXT_FIELDS
            if (value := getattr(record, name, None)) is not None
        )
        return self.redactor(f"{line} {ids}" if ids else line)


class JsonFormatter(logging.Formatter):
    """One JSON object per line; redacted."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        redact = self.redactor
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = redact(str(value))
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            entry["exception"] = redact(record.exc_text)
        if record.stack_info:
            entry["stack"] = redact(self.formatStack(record.stack_info))
        return orjson.dumps(entry).decode()


def use_json(log_format: str, stream: TextIO | None = None) -> bool:
    """Whether ``log_format`` means JSON lines on ``stream`` (stderr by default)."""
    if log_format not in FORMATS:
        raise LeadflowError(
            ErrorCode.INVALID_ENUM,
            f"LEADFLOW_LOG_FORMAT must be one of {', '.join(FORMATS)}, not {log_format!r}",
            field="log_format",
        )
    if log_format != "auto":
        return log_format == "json"
    stream = sys.stderr if stream is None else stream
    try:
        return not stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or closed: not a terminal
        return True


def secrets_of(settings: Any) -> tuple[str, ...]:
    def many(name: str) -> tuple[str, ...]:
        return tuple(getattr(settings, name, ()))

    connectors = (
        *many("hubspot_client_secrets"), getattr(settings, "hubspot_api_token", ""),
        *many("pipedrive_basic_auth"), *many("close_signature_keys"),
        *many("calendly_signing_keys"), *many("chilipiper_secrets"),
        *(s.split(":", 1)[-1] for s in many("generic_secrets")),
    )
    return (*settings.webhook_secrets, settings.notify_secret, settings.api_key, *connectors)


def formatter(*, json: bool, secrets: Iterable[str] = ()) -> logging.Formatter:
    redactor = Redactor(secrets)
    return JsonFormatter(redactor) if json else TextFormatter(redactor)


def logging_config(settings: Any, level: int | str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for the process: one stderr handler, our formatter."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": ContextFilter}},
        "formatters": {
            "leadflow": {
                "()": formatter,
                "json": use_json(settings.log_format),
                "secrets": secrets_of(settings),
            },
        },
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "leadflow",
                "filters": ["context"],
            },
        },
        "root": {"level": level_number(level), "handlers": ["default"]},
    }


def configure(settings: Any, level: int | str | None = None) -> None:
    """Set up logging for a process Faust's worker does not configure (the archiver)."""
    logging.config.dictConfig(
        logging_config(settings, settings.log_level if level is None else level)
    )


LEVELS = {"crit": logging.CRITICAL, "critical": logging.CRITICAL, "error": logging.ERROR,
          "warn": logging.WARNING, "warning": logging.WARNING, "info": logging.INFO,
          "debug": logging.DEBUG}


def level_number(level: int | str) -> int:
    """``crit``/``error``/``warn``/``info``/``debug`` (as LEADFLOW_LOG_LEVEL) or a number."""
    if isinstance(level, int):
        return level
    try:
        return LEVELS[level.strip().lower()]
    except KeyError:
        raise LeadflowError(
            ErrorCode.INVALID_ENUM,
            f"LEADFLOW_LOG_LEVEL must be one of crit, error, warn, info, debug, not {level!r}",
            field="log_level",
        ) from None
