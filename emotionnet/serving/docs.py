"""OpenAPI docs at /docs from files installed with the package, so they work with no internet.

FastAPI's default /docs page loads Swagger UI from a CDN; a service in a
closed network would show a blank page. With `swagger-ui-bundle-v2` (in the
serve extra) the page and its scripts come from this process; without it,
Swagger UI's CDN is used. The page and `/openapi.json` take the same
`dependencies` as the API (its key, when the service has one).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

ASSETS = "/docs/assets"
OPENAPI_URL = "/openapi.json"


def swagger_assets() -> Path | None:
    """The folder of Swagger UI's files, if a version that reads OpenAPI 3.1 (5.x) is installed."""
    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:
        return None
    path = Path(str(swagger_ui_path))
    return path if path.name.startswith("swagger-ui-5") and (path / "swagger-ui-bundle.js").is_file() else None


def install_docs(app: FastAPI, assets: Path | None, dependencies: list) -> None:
    """/docs (from `assets`, else the CDN) and /openapi.json, for an app made with `docs_url=None, openapi_url=None`."""
    urls = {}
    if assets is not None:
        app.mount(ASSETS, StaticFiles(directory=str(assets)), name="swagger-assets")
        urls = {"swagger_js_url": f"{ASSETS}/swagger-ui-bundle.js", "swagger_css_url": f"{ASSETS}/swagger-ui.css",
                "swagger_favicon_url": f"{ASSETS}/favicon-32x32.png"}

    @app.get(OPENAPI_URL, include_in_schema=False, dependencies=dependencies)
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=dependencies)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=OPENAPI_URL, title=f"{app.title} - API docs", **urls)
