"""/static/<name>: the vendored files with their content types and caching headers, confined
to the static directory; and CORS for the timeline's read-only endpoints only."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from auditkeep.api.app import create_app
from auditkeep.errors import ConfigError
from auditkeep.web import STATIC_DIR, parse_origins
from tests.conftest import _key, cli, make_core

pytestmark = pytest.mark.anyio
ALLOWED = "https://app.example.com"


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    core = make_core(tmp_path / "data", cors_allow_origins=f"{ALLOWED}, http://localhost:3000")
    core.start()
    key = _key(core, "acme", {"events:read"})
    transport = httpx.ASGITransport(app=create_app(core, manage_core=False))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c, key
    core.close()


@pytest.mark.parametrize(
    ("name", "media_type"),
    [
        ("timeline.js", "text/javascript; charset=utf-8"),
        ("tlog.js", "text/javascript; charset=utf-8"),
        ("timeline.css", "text/css; charset=utf-8"),
    ],
)
async def test_static_files_are_served_with_type_and_cache_headers(
    client: tuple[httpx.AsyncClient, str], name: str, media_type: str
) -> None:
    c, _ = client
    r = await c.get(f"/static/{name}")
    assert r.status_code == 200
    assert r.content == (STATIC_DIR / name).read_bytes()
    assert r.headers["content-type"] == media_type
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["cache-control"] == "public, max-age=300, must-revalidate"
    assert r.headers["access-control-allow-origin"] == "*"  # module scripts load in CORS mode
    etag = r.headers["etag"]
    assert etag == '"' + hashlib.sha256(r.content).hexdigest()[:32] + '"'
    again = await c.get(f"/static/{name}", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    stale = await c.get(f"/static/{name}", headers={"If-None-Match": '"other"'})
    assert stale.status_code == 200
    head = await c.head(f"/static/{name}")
    assert head.status_code == 200
    assert head.headers["etag"] == etag
    assert head.headers["content-length"] == str(len(r.content))


@pytest.mark.parametrize(
    "path",
    [
        "/static/../web/__init__.py",
        "/static/..%2f__init__.py",
        "/static/%2e%2e%2f%2e%2e%2fsettings.py",
        "/static/..%5c__init__.py",
        "/static/%2Fetc%2Fpasswd",
        "/static//etc/passwd",
        "/static/timeline.js%00.css",
        "/static/__init__.py",
        "/static/",
        "/static/nope.js",
        "/static/sub/timeline.js",
    ],
)
async def test_nothing_outside_the_static_files_is_served(
    client: tuple[httpx.AsyncClient, str], path: str
) -> None:
    c, _ = client
    r = await c.get(path)
    assert r.status_code == 404, (path, r.text[:200])
    assert r.headers["content-type"] == "application/problem+json"
    assert b"import " not in r.content and b"root:" not in r.content


async def test_unknown_file_names_the_files_served(client: tuple[httpx.AsyncClient, str]) -> None:
    c, _ = client
    r = await c.get("/static/timline.js")
    assert r.status_code == 404
    assert "timeline.css, timeline.js, tlog.js" in r.json()["detail"]


async def test_cors_preflight_for_an_allowed_origin(client: tuple[httpx.AsyncClient, str]) -> None:
    c, key = client
    pre = await c.options(
        "/v1/events",
        headers={
            "Origin": ALLOWED,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert pre.status_code == 200
    assert pre.headers["access-control-allow-origin"] == ALLOWED
    assert "authorization" in pre.headers["access-control-allow-headers"].lower()
    r = await c.get("/v1/events", headers={"Origin": ALLOWED, "Authorization": f"Bearer {key}"})
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == ALLOWED
    assert "access-control-allow-credentials" not in r.headers  # bearer tokens, no cookies
    proof = await c.get(
        "/v1/log/proof/inclusion?seq=1",
        headers={"Origin": "http://localhost:3000", "Authorization": f"Bearer {key}"},
    )
    assert proof.headers["access-control-allow-origin"] == "http://localhost:3000"


async def test_cors_refuses_other_origins_writes_and_other_endpoints(
    client: tuple[httpx.AsyncClient, str],
) -> None:
    c, key = client
    evil = await c.options(
        "/v1/events",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert evil.status_code == 400
    assert "access-control-allow-origin" not in evil.headers
    r = await c.get(
        "/v1/events", headers={"Origin": "https://evil.example", "Authorization": f"Bearer {key}"}
    )
    assert "access-control-allow-origin" not in r.headers
    write = await c.options(
        "/v1/events", headers={"Origin": ALLOWED, "Access-Control-Request-Method": "POST"}
    )
    assert write.status_code >= 400  # a failed preflight: the browser sends nothing
    assert "access-control-allow-origin" not in write.headers
    posted = await c.post(
        "/v1/log/checkpoints", headers={"Origin": ALLOWED, "Authorization": f"Bearer {key}"}
    )
    assert "access-control-allow-origin" not in posted.headers  # whatever it answers
    admin = await c.get(
        "/v1/tenants", headers={"Origin": ALLOWED, "Authorization": f"Bearer {key}"}
    )
    assert "access-control-allow-origin" not in admin.headers


async def test_no_cors_by_default(tmp_path: Path) -> None:
    core = make_core(tmp_path / "data")
    core.start()
    try:
        key = _key(core, "acme", {"events:read"})
        transport = httpx.ASGITransport(app=create_app(core, manage_core=False))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            r = await c.get(
                "/v1/events", headers={"Origin": ALLOWED, "Authorization": f"Bearer {key}"}
            )
            assert r.status_code == 200
            assert "access-control-allow-origin" not in r.headers
    finally:
        core.close()


def test_a_bad_origin_is_refused_before_the_server_starts(tmp_path: Path) -> None:
    out = cli(
        "serve", "--cors-allow-origins", "app.example.com", data_dir=tmp_path / "d", check=False
    )
    assert out.returncode == 1
    assert "cors_allow_origins: 'app.example.com' is not an origin" in out.stderr
    assert not (tmp_path / "d").exists()  # nothing was created


def test_cors_origins_must_be_origins() -> None:
    assert parse_origins(" https://a.example ,http://localhost:8000/") == [
        "https://a.example",
        "http://localhost:8000",
    ]
    for bad in ("a.example", "https://a.example/app", "ftp://a.example", "*"):
        with pytest.raises(ConfigError, match="is not an origin"):
            parse_origins(bad)
