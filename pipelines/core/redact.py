"""The one redaction rule: no password, token or secret value ever leaves in output.

Every surface that shows a URL, a DSN or a setting passes it through here first: the gateway's
``/version`` and ``/health``, every log line (:class:`pipelines.core.observability.StepLogger`),
every JSON record written with ``write_json_atomic`` (reports, events, the scorecard data), the
scorecard and replay HTML, MLflow params and tags. The rule, in three parts:

* **URLs and DSNs**: the password of ``scheme://user:password@host`` is replaced by ``***``
  (user and host stay: they are what an operator needs to find the database), and so is the
  value of a ``password=``/``token=``/``secret=``/``api_key=`` query parameter or libpq keyword;
* **secret-bearing settings**: in a mapping, the value of a key whose name says it holds a
  secret (``password``, ``token``, ``secret``, ``webhook``, ``fernet``, ``credential``,
  ``api_key``) is masked whole, whatever it looks like;
* **known secret values**: the value of every environment variable whose name says it holds a
  secret (same words, plus a trailing ``_KEY``) is replaced wherever it appears, so a secret
  embedded in free text (an exception message, a command line) is caught too. Values shorter
  than six characters are not searched for (they would mask ordinary words); such a secret is
  still masked in URLs and under secret-named keys.

Redaction is idempotent and never raises: a surface that cannot be redacted is a bug, not a
reason to print the secret.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

MASK = "***"
_SECRET_WORDS = r"PASSWORD|PASSWD|TOKEN|SECRET|FERNET|CREDENTIAL|WEBHOOK|API_?KEY|PRIVATE_KEY"
_SECRET_ENV = re.compile(rf"{_SECRET_WORDS}|_KEY$", re.IGNORECASE)
_SECRET_KEY = re.compile(_SECRET_WORDS, re.IGNORECASE)
# scheme://user:password@host (the password holds anything but '@', '/' and whitespace; an '@'
# inside a password must be percent-encoded in a valid URL anyway).
_URL_CREDS = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*:)([^@/\s]+)(@)")
# password=..., token=..., secret=... in query strings and libpq DSNs
_KEYWORD = re.compile(
    r"(?i)\b((?:password|passwd|pwd|token|access_token|secret|api_key|apikey)=)([^&\s;'\",]+)"
)
_MIN_SECRET_LEN = 6


def is_secret_name(name: str) -> bool:
    """Whether a setting or environment variable of this name holds a secret."""
    return bool(_SECRET_ENV.search(name))


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """Values of the environment variables whose names mark them as secrets, longest first."""
    env = os.environ if environ is None else environ
    values = {v for k, v in env.items() if _SECRET_ENV.search(k) and len(v) >= _MIN_SECRET_LEN}
    return sorted(values, key=len, reverse=True)


def redact_text(text: str, secrets: list[str] | None = None) -> str:
    """``text`` with URL passwords, secret keywords and known secret values masked."""
    if not text:
        return text
    out = _URL_CREDS.sub(rf"\1{MASK}\3", text) if "://" in text else text
    if "=" in out:
        out = _KEYWORD.sub(rf"\1{MASK}", out)
    for value in secret_values() if secrets is None else secrets:
        if value in out:
            out = out.replace(value, MASK)
    return out


def redact(obj: Any, secrets: list[str] | None = None) -> Any:
    """``obj`` with every string inside redacted and secret-named keys masked; structure kept.

    Exceptions become their redacted text (their message is where a DSN usually hides); other
    non-string scalars (numbers, None, booleans) are returned unchanged.
    """
    known = secret_values() if secrets is None else secrets
    if isinstance(obj, str):
        return redact_text(obj, known)
    if isinstance(obj, Mapping):
        return {
            k: (MASK if isinstance(k, str) and _SECRET_KEY.search(k) and _filled(v) else redact(v, known))
            for k, v in obj.items()
        }
    if isinstance(obj, list):
        return [redact(v, known) for v in obj]
    if isinstance(obj, tuple):
        return tuple(redact(v, known) for v in obj)
    if isinstance(obj, BaseException):
        return redact_text(f"{type(obj).__name__}: {obj}", known)
    return obj


def _filled(value: Any) -> bool:
    """A secret-named key with an empty/absent value says nothing; keep it visible as such."""
    return value not in (None, "", False) and not isinstance(value, (bool, int, float))
