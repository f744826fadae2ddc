"""The one place that hides passwords in URLs before anything is printed, logged or tagged."""

from __future__ import annotations

import re

#: ``scheme://user:password@`` (any scheme; the password runs to the ``@``).
_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@/\s]+@")


def redact_url(value: str) -> str:
    """``value`` with every URL password replaced by ``***`` (``postgresql://user:secret@host/db`` ->
    ``postgresql://user:***@host/db``); text without one is returned as it is."""
    return _URL_PASSWORD.sub(r"\1***@", str(value))
