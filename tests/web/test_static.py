"""The page's files over HTTP: paths, content types, the security policy, caching."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path

import httpx

from pichat_trio.web.static import assets

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "pichat_trio" / "web" / "static"


async def test_the_page_and_its_files_are_served_with_their_types(server):
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        page = await http.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert '<textarea id="message"' in page.text
        for path, kind in [
            ("/static/app.js", "text/javascript; charset=utf-8"),
            ("/static/vendor/marked.esm.js", "text/javascript; charset=utf-8"),
            ("/static/vendor/purify.es.mjs", "text/javascript; charset=utf-8"),
            ("/static/style.css", "text/css; charset=utf-8"),
            ("/static/manifest.webmanifest", "application/manifest+json"),
            ("/static/icon-192.png", "image/png"),
            ("/static/icon.svg", "image/svg+xml"),
        ]:
            response = await http.get(path)
            assert response.status_code == 200, path
            assert response.headers["content-type"] == kind, path
            assert response.content == (STATIC / path.removeprefix("/static/")).read_bytes()
        # Licences ship in the package but are not served; nothing outside the folder is.
        for path in ["/static/vendor/LICENSE.marked", "/static/../static.py", "/index.html"]:
            assert (await http.get(path)).status_code == 404, path
        # The server's own routes are untouched.
        assert (await http.get("/healthz")).json() == {"status": "ok"}


async def test_every_response_carries_a_strict_content_security_policy(server):
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        response = await http.get("/")
    parts = response.headers["content-security-policy"].split(";")
    policy = dict(part.strip().split(" ", 1) for part in parts)
    host = server.http_url.removeprefix("http://")
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == "'self'"  # no 'unsafe-inline', no 'unsafe-eval'
    assert policy["style-src"] == "'self'"
    assert policy["connect-src"] == f"'self' ws://{host} wss://{host}"
    assert policy["frame-ancestors"] == "'none'"
    assert response.headers["x-content-type-options"] == "nosniff"
    # The page itself keeps to it: no inline script, style or event handler.
    html = (STATIC / "index.html").read_text()
    assert "<style" not in html and " style=" not in html
    assert re.search(r"\son[a-z]+=", html) is None
    assert html.count("<script") == 1 and 'src="/static/app.js"' in html


async def test_a_strange_host_header_is_left_out_of_the_policy(server):
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        response = await http.get("/", headers={"host": "evil.example; script-src *"})
    assert "evil" not in response.headers["content-security-policy"]
    assert "connect-src 'self';" in response.headers["content-security-policy"]


async def test_files_are_revalidated_by_etag(server):
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        first = await http.get("/static/app.js")
        assert first.headers["cache-control"] == "no-cache"
        etag = first.headers["etag"]
        again = await http.get("/static/app.js", headers={"if-none-match": etag})
        assert again.status_code == 304 and again.content == b""
        other = await http.get("/static/app.js", headers={"if-none-match": '"other"'})
        assert other.status_code == 200 and other.content == first.content
        head = await http.head("/")
        assert head.status_code == 200 and head.content == b""
        assert int(head.headers["content-length"]) == len((STATIC / "index.html").read_bytes())
        post = await http.post("/", content=b"x")
        assert post.status_code == 405 and post.headers["allow"] == "GET, HEAD"


def test_a_wheel_carries_every_file_the_page_needs():
    """Each served file is matched by pyproject's package-data, so an installed wheel has it."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["pichat_trio"]
    package = ROOT / "pichat_trio"
    files = [p for p in STATIC.rglob("*") if p.is_file()]
    missing = [
        str(p.relative_to(package))
        for p in files
        if not any(fnmatch.fnmatch(str(p.relative_to(package)), pat) for pat in patterns)
    ]
    assert missing == []
    served = {path.removeprefix("/static/") for path in assets()} - {"/"}
    assert {"app.js", "vendor/marked.esm.js", "vendor/purify.es.mjs", "icon-512.png"} <= served


def test_the_vendored_libraries_are_the_pinned_ones_with_their_licences():
    versions = (STATIC / "vendor" / "VERSIONS").read_text().splitlines()[1:]
    assert [line.split()[:2] for line in versions] == [["marked", "18.2.1"], ["dompurify", "3.5.0"]]
    script = (ROOT / "scripts" / "vendor_web.sh").read_text()
    for line in versions:
        name, version, integrity = line.split()
        assert f'"{name} {version} {integrity} ' in script
    assert "marked v18.2.1" in (STATIC / "vendor" / "marked.esm.js").read_text()[:200]
    assert "3.5.0" in (STATIC / "vendor" / "purify.es.mjs").read_text()[:300]
    for licence in ["LICENSE.marked", "LICENSE.dompurify", "LICENSE-MPL.dompurify"]:
        assert (STATIC / "vendor" / licence).stat().st_size > 1000
