"""Who is asking: the tenant of a request, from the gateway's header and/or the client's credential.

The pipeline keys and partitions on it; the Anthropic transport labels billed calls with it. A hash
of the credential stands in for it, never the credential itself.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

__all__ = ["tenant_of"]


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _text(value: str) -> str:
    """A header value as the text its sender meant. ASGI servers decode header octets as latin-1, so
    UTF-8 arrives as mojibake ("tÃ©nant"): read it as UTF-8 when it is that, else keep it as it came.
    Either way the same octets always give the same tenant."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


def tenant_of(headers: Mapping[str, str], tenant_header: str, source: str = "header-or-credential") -> str:
    """The tenant: from the trusted header set by the gateway and/or a hash of the credential
    (``source``, see ``tenantSource`` in the config); ``anonymous`` with neither. Never the body: a
    client could write anything there. Header values in any encoding are accepted (see ``_text``)."""
    value = _text(headers.get(tenant_header.lower()) or "").strip()
    cred = ""
    for name in ("authorization", "x-api-key", "api-key"):
        if headers.get(name):
            cred = "c:" + _sha(headers[name].strip())[:24]
            break
    if source == "credential":
        return cred or "anonymous"
    if source == "header-and-credential":
        return f"h:{value}|{cred}" if value or cred else "anonymous"
    if value:
        return "h:" + value
    return cred or "anonymous"
