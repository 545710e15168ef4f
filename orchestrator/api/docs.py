"""Interactive API docs (`/docs` Swagger UI, `/redoc` ReDoc) served wholly by this process.

FastAPI's own pages load their scripts from a CDN, so on a network without one they stay blank. The files
come instead from the `fastapi-offline` package (only its assets are used, not its app class) and are
mounted under `/docs/static`; the pages name only local paths, behind any `root_path` a proxy sets.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC_PATH = "/docs/static"
ASSETS = Path(str(files("fastapi_offline") / "static"))

# `persistAuthorization` keeps the key entered under Authorize across page reloads; a null `validatorUrl`
# stops Swagger UI from asking an outside validator to draw a badge.
SWAGGER_PARAMETERS = {"persistAuthorization": True, "validatorUrl": None}


def install(app: FastAPI) -> None:
    """Mount the assets and add both pages; call it on an app made with `docs_url=None, redoc_url=None`."""
    app.mount(STATIC_PATH, StaticFiles(directory=ASSETS), name="docs-static")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = _root(request)
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{STATIC_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{STATIC_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{root}{STATIC_PATH}/favicon.png",
            swagger_ui_parameters=SWAGGER_PARAMETERS,
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = _root(request)
        return get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{STATIC_PATH}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{STATIC_PATH}/favicon.png",
            with_google_fonts=False,
        )


def _root(request: Request) -> str:
    root: str = request.scope.get("root_path", "")
    return root.rstrip("/")
