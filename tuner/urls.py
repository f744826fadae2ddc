"""The one place that hides passwords in URLs before anything is printed, logged or tagged."""

from __future__ import annotations

import re

#: ``scheme://user:password@`` (any scheme; the password runs to the ``@``).
_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@/\s]+@")

#: A secret given as a query parameter (``...?password=secret``, ``&sslpassword=...``): the value
#: runs to the next ``&``, ``#`` or white space.
_QUERY_SECRET = re.compile(
    r"([?&;](?:[a-z_]*password|passwd|pwd|pass|secret|token|api_?key)=)[^&#\s]+", re.IGNORECASE
)


def redact_url(value: str) -> str:
    """``value`` with every URL password replaced by ``***``, in the user part
    (``postgresql://user:secret@host/db`` -> ``postgresql://user:***@host/db``) and in query
    parameters (``...?password=secret`` -> ``...?password=***``); text without one is returned
    as it is."""
    return _QUERY_SECRET.sub(r"\1***", _URL_PASSWORD.sub(r"\1***@", str(value)))
