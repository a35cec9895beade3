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


def tenant_of(headers: Mapping[str, str], tenant_header: str, source: str = "header-or-credential") -> str:
    """The tenant: from the trusted header set by the gateway and/or a hash of the credential
    (``source``, see ``tenantSource`` in the config); ``anonymous`` with neither. Never the body: a
    client could write anything there."""
    value = (headers.get(tenant_header.lower()) or "").strip()
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
