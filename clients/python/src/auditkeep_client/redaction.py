"""Redaction: a small chain of processors run on every event before it is validated and stored.

A processor is any callable taking the raw event dict and returning it (possibly changed), in
the style of structlog's processors. ``log()`` and the middleware share the client's chain, so
the same rules apply to events written by hand and to recorded requests.

Built-in processors:

- :class:`RedactKeys` replaces the value of every metadata key (at any depth) whose *name*
  looks sensitive (``password``, ``passwd``, ``token``, ``secret``, ``key``, ``api_key``,
  ``authorization``, ``cookie``, ``session`` ... and whatever you add) with ``"[REDACTED]"``.
  A name is split into words at ``_``, ``-``, ``.``, spaces and camelCase boundaries; it is
  sensitive when one of its words is a sensitive word (``user_password``, ``X-Api-Key``,
  ``refreshToken``) or when it contains a long sensitive word (``sessionid``, ``apikey``).
- :class:`RedactValues` rewrites strings in ``metadata`` and ``reason`` with regular
  expressions: by default bearer/basic credentials and ``password=...``-style pairs inside
  text (stack traces, messages). :data:`CREDIT_CARD` (Luhn-checked) is available to add.

Build a chain with :func:`default_processors` and pass it as ``AuditKeep(processors=...)``, or
pass ``redact_keys=`` / ``redact_patterns=`` to extend the default one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

__all__ = [
    "BEARER_TOKEN",
    "CREDIT_CARD",
    "DEFAULT_PATTERNS",
    "DEFAULT_SENSITIVE_WORDS",
    "REDACTED",
    "SECRET_ASSIGNMENT",
    "Processor",
    "RedactKeys",
    "RedactValues",
    "Redactor",
    "ValuePattern",
    "default_processors",
    "run_processors",
]

REDACTED: Final = "[REDACTED]"

Processor = Callable[[dict[str, Any]], dict[str, Any]]

#: Words that make a key sensitive when they appear as a word of the key's name.
DEFAULT_SENSITIVE_WORDS: Final = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "passphrase",
        "token",
        "secret",
        "key",
        "apikey",
        "authorization",
        "auth",
        "cookie",
        "cookies",
        "session",
        "sessionid",
        "credential",
        "credentials",
        "csrf",
        "xsrf",
        "otp",
        "pin",
        "ssn",
        "signature",
    }
)

#: Longer words that make a key sensitive wherever they appear in it (``mysessionid``).
_EMBEDDED_WORDS: Final = (
    "password",
    "passwd",
    "secret",
    "token",
    "apikey",
    "authorization",
    "cookie",
    "sessionid",
    "credential",
    "privatekey",
)

_WORD_SPLIT: Final = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])")


class ValuePattern:
    """A regex and its replacement (a string with group references, or a function)."""

    __slots__ = ("check", "needles", "pattern", "replacement")

    def __init__(
        self,
        pattern: str | re.Pattern[str],
        replacement: str | Callable[[re.Match[str]], str] = REDACTED,
        check: Callable[[re.Match[str]], bool] | None = None,
        needles: Sequence[str] = (),
    ) -> None:
        """``check`` vets each match (e.g. a Luhn check); ``needles`` are substrings of which
        at least one must occur for the pattern to be tried at all (a cheap pre-filter)."""
        self.pattern = re.compile(pattern) if isinstance(pattern, str) else pattern
        self.replacement = replacement
        self.check = check
        self.needles = tuple(needles)

    def sub(self, text: str) -> str:
        if self.needles:
            for needle in self.needles:
                if needle in text:
                    break
            else:
                return text
        if self.check is None:
            return self.pattern.sub(self.replacement, text)
        check = self.check
        repl = self.replacement

        def _one(m: re.Match[str]) -> str:
            if not check(m):
                return m.group(0)
            return repl(m) if callable(repl) else m.expand(repl)

        return self.pattern.sub(_one, text)


def _luhn_ok(m: re.Match[str]) -> bool:
    digits = [int(c) for c in m.group(0) if c.isdigit()]
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


#: ``Bearer abc.def`` / ``Basic dXNlcjpwYXNz`` -> ``Bearer [REDACTED]``.
BEARER_TOKEN: Final = ValuePattern(
    r"(?i)\b(bearer|basic|token)(\s+)[A-Za-z0-9._~+/\-]{8,}=*",
    r"\1\2" + REDACTED,
    needles=(" ", "\t"),
)
#: ``password=hunter2``, ``"api_key": "abc"``, ``token: xyz`` inside text -> value redacted.
SECRET_ASSIGNMENT: Final = ValuePattern(
    r"(?i)([\w-]*(?:password|passwd|pwd|secret|token|api[_-]?key|authorization|cookie|session"
    r"(?:[_-]?id)?)[\w-]*)"
    r"""(["']?\s*[:=]\s*["']?)(?!\[REDACTED\])[^\s"'&,;}]+""",
    r"\1\2" + REDACTED,
    needles=("=", ":"),
)
#: Payment card numbers (13-19 digits, spaces or dashes allowed, Luhn-checked).
CREDIT_CARD: Final = ValuePattern(r"\b\d(?:[ -]?\d){12,18}\b", REDACTED, check=_luhn_ok)

DEFAULT_PATTERNS: Final[tuple[ValuePattern, ...]] = (BEARER_TOKEN, SECRET_ASSIGNMENT)


class RedactKeys:
    """Replace values under sensitive-looking keys in ``metadata`` (at any depth)."""

    def __init__(
        self,
        extra_names: Iterable[str] = (),
        *,
        words: Iterable[str] = DEFAULT_SENSITIVE_WORDS,
        fields: Sequence[str] = ("metadata",),
        replacement: str = REDACTED,
    ) -> None:
        extra = [n.lower() for n in extra_names]
        self.words = frozenset(words) | {n for n in extra if _WORD_SPLIT.search(n) is None}
        self.exact = frozenset(_compact(n) for n in extra)
        self.fields = tuple(fields)
        self.replacement = replacement
        self._cache: dict[Any, bool] = {}

    def is_sensitive(self, name: str) -> bool:
        """Whether a key with this name has its value redacted."""
        cached = self._cache.get(name)
        if cached is None:
            cached = self._is_sensitive(name)
        return cached

    def _is_sensitive(self, name: str) -> bool:
        compact = _compact(name)
        if compact in self.exact or compact in self.words:
            return True
        parts = [p.lower() for p in _WORD_SPLIT.split(name) if p]
        if any(p in self.words for p in parts):
            return True
        return any(w in compact for w in _EMBEDDED_WORDS)

    def redact(self, value: Any) -> Any:
        """A copy of ``value`` with sensitive keys' values replaced (containers are copied)."""
        if isinstance(value, dict):
            return self._dict(value)
        if isinstance(value, list | tuple):
            return self._list(value)
        return value

    def _dict(self, value: dict[Any, Any]) -> dict[Any, Any]:
        cache = self._cache
        out: dict[Any, Any] = {}
        for k, v in value.items():
            sensitive = cache.get(k)
            if sensitive is None:
                sensitive = isinstance(k, str) and self._is_sensitive(k)
                if len(cache) < 4096:
                    cache[k] = sensitive
            if sensitive:
                out[k] = self.replacement
            elif isinstance(v, dict):
                out[k] = self._dict(v)
            elif isinstance(v, list | tuple):
                out[k] = self._list(v)
            else:
                out[k] = v
        return out

    def _list(self, value: list[Any] | tuple[Any, ...]) -> list[Any]:
        return [
            self._dict(v)
            if isinstance(v, dict)
            else self._list(v)
            if isinstance(v, list | tuple)
            else v
            for v in value
        ]

    def __call__(self, event: dict[str, Any]) -> dict[str, Any]:
        for name in self.fields:
            value = event.get(name)
            if value:
                event[name] = self.redact(value)
        return event


def _compact(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


class RedactValues:
    """Rewrite strings in ``metadata`` (any depth) and ``reason`` with value patterns."""

    def __init__(
        self,
        patterns: Iterable[ValuePattern | str | re.Pattern[str]] = DEFAULT_PATTERNS,
        *,
        fields: Sequence[str] = ("metadata", "reason"),
    ) -> None:
        self.patterns = tuple(
            p if isinstance(p, ValuePattern) else ValuePattern(p) for p in patterns
        )
        self.fields = tuple(fields)

    def text(self, value: str) -> str:
        for p in self.patterns:
            value = p.sub(value)
        return value

    def redact(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.redact(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.redact(v) for v in value]
        return value

    def __call__(self, event: dict[str, Any]) -> dict[str, Any]:
        if not self.patterns:
            return event
        for name in self.fields:
            value = event.get(name)
            if value:
                event[name] = self.redact(value)
        return event


class Redactor:
    """Key-name and value redaction in a single walk (the default chain's one processor).

    Equivalent to ``RedactKeys`` followed by ``RedactValues`` on ``metadata`` (plus the value
    patterns on ``reason``), but each container is copied once.
    """

    def __init__(self, keys: RedactKeys, values: RedactValues) -> None:
        self.keys = keys
        self.values = values

    def _walk(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.values.text(value)
        if isinstance(value, dict):
            cache = self.keys._cache
            out: dict[Any, Any] = {}
            for k, v in value.items():
                sensitive = cache.get(k)
                if sensitive is None:
                    sensitive = isinstance(k, str) and self.keys._is_sensitive(k)
                    if len(cache) < 4096:
                        cache[k] = sensitive
                out[k] = self.keys.replacement if sensitive else self._walk(v)
            return out
        if isinstance(value, list | tuple):
            return [self._walk(v) for v in value]
        return value

    def __call__(self, event: dict[str, Any]) -> dict[str, Any]:
        metadata = event.get("metadata")
        if metadata:
            event["metadata"] = self._walk(metadata)
        reason = event.get("reason")
        if isinstance(reason, str) and reason:
            event["reason"] = self.values.text(reason)
        return event


def default_processors(
    extra_names: Iterable[str] = (),
    extra_patterns: Iterable[ValuePattern | str | re.Pattern[str]] = (),
) -> list[Processor]:
    """The default chain: key-name redaction and value patterns (defaults + extras), fused
    into one :class:`Redactor`."""
    return [Redactor(RedactKeys(extra_names), RedactValues((*DEFAULT_PATTERNS, *extra_patterns)))]


def run_processors(processors: Sequence[Processor], event: dict[str, Any]) -> dict[str, Any]:
    for p in processors:
        event = p(event)
    return event


def redact_text(processors: Sequence[Processor], text: str) -> str:
    """Apply the value patterns of a chain to free text (used for stack traces)."""
    for p in processors:
        if isinstance(p, RedactValues):
            text = p.text(text)
        elif isinstance(p, Redactor):
            text = p.values.text(text)
    return text
