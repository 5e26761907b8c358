"""Secrets never reach a log line: a redaction filter for every log handler.

Two nets, because a secret can reach a log before surge knows it is one:

- by shape: the values under `data` / `stringData` of any object written as JSON or as a Python
  dict (what the kubernetes client's debug logging prints for a Secret's response body), and
  `password=`/`token=`-style pairs and credentials in URLs;
- by value: every value surge has read from a Secret or a TriggerAuthentication is registered
  with `remember()` (its text and its base64 form), and any occurrence is replaced.

`install()` puts the filter on every handler that exists (root's and the kubernetes client's
loggers') and on those created later through `logging.basicConfig`; the operator calls it at
start. Exception text is formatted and redacted in the filter too, so tracebacks are covered.
"""

from __future__ import annotations

import base64
import logging
import re
import threading

MASK = "<redacted>"
_MIN_LENGTH = 4  # shorter values ("1", "true") would mask half the log and protect nothing

# "data": {...} / 'stringData': {...} in JSON or a dict's repr: mask every value inside
_DATA_BLOCK = re.compile(r"""(?P<head>\\?["'](?:data|stringData|binaryData)\\?["']\s*:\s*\{)(?P<body>[^{}]*)\}""")
_QUOTED_VALUE = re.compile(r"""(?P<key>\\?["'][^"'\\]*\\?["']\s*:\s*)(?P<q>\\?["'])(?P<value>.*?)(?P=q)""")
# password=… in query strings and settings, "password": "…" in JSON (not "password: is required")
_PAIR = re.compile(r"""(?i)(?P<key>\b(?:password|passwd|pwd|token|secret|api[_-]?key|access[_-]?key)"""
                   r"""(?:=|\\?["']\s*:\s*\\?["']))(?P<value>[^\s"'\\,;&}]+)""")
_URL_CREDENTIALS = re.compile(r"(?P<scheme>\b[a-z][a-z0-9+.-]*://)(?P<user>[^/\s:@]*):(?P<password>[^/\s@]+)@")


class Redactor:
    """The known secret values, and the substitution that hides them and secret-shaped text."""

    MAX_VALUES = 4096  # the oldest are forgotten past this; Secrets churn, memory must not
    MAX_LENGTH = 64 * 1024  # a PEM key is a few KiB; longer values are not searched for

    def __init__(self) -> None:
        self._values: dict[str, None] = {}  # insertion-ordered set
        self._pattern: re.Pattern[str] | None = None
        self._dirty = False
        self._lock = threading.Lock()

    def remember(self, *values: object) -> None:
        """Register secret values (and their base64 forms) to be masked wherever they appear."""
        with self._lock:
            for value in values:
                if not isinstance(value, str) or not _MIN_LENGTH <= len(value.strip()) <= self.MAX_LENGTH:
                    continue
                raw = value.strip().encode()
                encoded = base64.b64encode(raw).decode()
                for form in (value.strip(), encoded, encoded.rstrip("="), base64.urlsafe_b64encode(raw).decode()):
                    if form not in self._values:
                        self._values[form] = None
                        self._dirty = True
            while len(self._values) > self.MAX_VALUES:
                del self._values[next(iter(self._values))]

    def forget_all(self) -> None:
        with self._lock:
            self._values.clear()
            self._pattern, self._dirty = None, False

    def _current(self) -> re.Pattern[str] | None:
        if self._dirty:  # compiled when first needed, not on every remember()
            with self._lock:
                ordered = sorted(self._values, key=len, reverse=True)
                self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None
                self._dirty = False
        return self._pattern

    def redact(self, text: str) -> str:
        pattern = self._current()
        if pattern is not None:
            text = pattern.sub(MASK, text)
        if "ata" in text:
            text = _DATA_BLOCK.sub(lambda m: m.group("head") + _QUOTED_VALUE.sub(
                lambda v: f"{v.group('key')}{v.group('q')}{MASK}{v.group('q')}", m.group("body")) + "}", text)
        text = _PAIR.sub(lambda m: m.group("key") + MASK, text)
        return _URL_CREDENTIALS.sub(lambda m: f"{m.group('scheme')}{m.group('user')}:{MASK}@", text)


REDACTOR = Redactor()


def remember(*values: object) -> None:
    REDACTOR.remember(*values)


def redact(text: str) -> str:
    return REDACTOR.redact(text)


class RedactingFilter(logging.Filter):
    """Rewrites each record's message (and exception text) with secrets masked; never drops one."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is the logging module's to report
            return True
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


_FILTER = RedactingFilter()
# the kubernetes client logs whole response bodies at DEBUG (a Secret's data included)
KUBERNETES_LOGGERS = ("kubernetes_asyncio", "kubernetes_asyncio.client.rest", "client", "urllib3", "aiohttp")


def install(level: int = logging.INFO, fmt: str = "%(asctime)s %(levelname)s %(name)s %(message)s") -> None:
    """Configure logging with the redaction filter on every handler, present and default."""
    logging.basicConfig(level=level, format=fmt)
    loggers = [logging.getLogger(), *(logging.getLogger(n) for n in KUBERNETES_LOGGERS),
               *(lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger))]
    for logger in loggers:
        for handler in logger.handlers:
            if _FILTER not in handler.filters:
                handler.addFilter(_FILTER)
    # handlers added later (a library's own) are covered at the source too: records are redacted
    # as they are made, whichever handler they reach
    factory = logging.getLogRecordFactory()
    if not getattr(factory, "surge_redacting", False):
        def make_record(*args: object, **kwargs: object) -> logging.LogRecord:
            record = factory(*args, **kwargs)
            _FILTER.filter(record)
            return record

        make_record.surge_redacting = True  # type: ignore[attr-defined]
        logging.setLogRecordFactory(make_record)
