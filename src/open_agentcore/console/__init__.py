"""The web console: its session cookies and the static pages the runtime server serves.

The pages are plain HTML, CSS and ES modules in `static/`, shipped as package data: nothing is
built on the user's machine. They call the server's own operations with the console cookie.
"""

from __future__ import annotations

from pathlib import Path

from .cookies import (
    COOKIE_NAME,
    CSRF_HEADER,
    CSRF_QUERY,
    DEFAULT_LIFETIME,
    ConsoleSession,
    CookieRejected,
    CookieSigner,
    csrf_matches,
)

STATIC_DIR = Path(__file__).parent / "static"

__all__ = [
    "COOKIE_NAME",
    "CSRF_HEADER",
    "CSRF_QUERY",
    "DEFAULT_LIFETIME",
    "STATIC_DIR",
    "ConsoleSession",
    "CookieRejected",
    "CookieSigner",
    "csrf_matches",
]
