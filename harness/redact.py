"""Credentials out of everything the harness records or prints: one redaction, used everywhere.

An engine address (`DOCKER_HOST=tcp://user:TOKEN@host:2376`), a package index URL with a token, an
environment value named like a secret: the harness writes such values into messages, log headers,
step states, result rows, reports and bundles. Each goes through `redact_text` (any text: the
user-info of every URL and the values of token-like query parameters become `***`), `redact_url`
(one address, also without a scheme) or `redact_env_value` (a variable: masked whole when its name
says it is a secret). What stays is what an evaluator needs: the scheme, host and port.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

MASK: Final = "***"
# scheme://user:password@ — every '@'-ended segment of the authority (a password may hold '@').
_USERINFO_RE: Final = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?:[^\s/?#@]*@)+")
# ?token=…, &access_key=…, ;sig=…: a query parameter whose name says it carries a secret.
_SECRET_NAME: Final = r"(?:token|key|secret|passw|pwd|auth|sig|credential|session)"
_QUERY_RE: Final = re.compile(rf"(?P<key>[?&;][^=&\s#?;]*{_SECRET_NAME}[^=&\s#?;]*=)[^&\s#;]+", re.IGNORECASE)
# An environment variable whose value is a secret by its name (an API key for wandb, say).
SECRET_VARIABLE_RE: Final = re.compile(r"KEY|TOKEN|SECRET|PASSW|CREDENTIAL|AUTH", re.IGNORECASE)


def redact_text(text: str) -> str:
    """`text` with the user-info of every URL and every token-like query value replaced by ***."""
    if "@" not in text and "=" not in text:
        return text
    text = _USERINFO_RE.sub(lambda m: f"{m['scheme']}{MASK}@", text)
    return _QUERY_RE.sub(lambda m: f"{m['key']}{MASK}", text)


def redact_url(url: str) -> str:
    """An address as the harness records it: no user-info, no token; `user:pw@host` without a scheme too."""
    out = redact_text(url)
    if "://" not in out and "@" in out:
        # host:port forms with credentials but no scheme (what a careless DOCKER_HOST may hold).
        out = f"{MASK}@{out.rsplit('@', 1)[1]}"
    return out


def redact_env_value(name: str, value: str) -> str:
    """An environment value as a log shows it: *** for a secret's name, else its URLs redacted."""
    return MASK if SECRET_VARIABLE_RE.search(name) else redact_text(value)


def redact_env(env: Mapping[str, str]) -> dict[str, str]:
    """Every value of an environment (or build arguments) through `redact_env_value`."""
    return {k: redact_env_value(k, v) for k, v in env.items()}
