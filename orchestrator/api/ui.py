"""The dashboard at `/ui`: one HTML page, a stylesheet and a script from the package, no build step.

The page holds no data of its own: the script reads everything from the canonical API with the key the
user enters (kept in the tab's sessionStorage and sent as `X-API-Key`, never in a URL), so the page is
scoped to the key's tenant exactly like every other client. Its responses carry a strict
content-security-policy: scripts, styles and connections from this origin only, no inline script, no
framing, so text from the API that slipped into markup could not run.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response
from starlette.types import Scope

PATH = "/ui"
ASSETS = Path(__file__).with_name("ui_static")

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self';"
        " base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # A new release's script must not meet an old cached page: the files are small, revalidate each time.
    "Cache-Control": "no-cache",
}


class _DashboardFiles(StaticFiles):
    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(SECURITY_HEADERS)
        return response


def install(app: FastAPI) -> None:
    """Serve the dashboard's files under `/ui/` (index.html for `/ui/`; `/ui` redirects there)."""
    app.mount(PATH, _DashboardFiles(directory=ASSETS, html=True), name="ui")
