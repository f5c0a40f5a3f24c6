"""The s3 destination kind: SigV4 signing, object names and bytes, and delivery to a real
S3-compatible server (moto in server mode, signature checking on), read back with boto3."""

from __future__ import annotations

import base64
import gzip
import hashlib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import quote

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditkeep.delivery.base import Batch, DeliveryFailed, Secrets, SenderContext
from auditkeep.delivery.netguard import NetGuard
from auditkeep.delivery.s3 import (
    EMPTY_SHA256,
    S3Kind,
    S3Sender,
    canonical_query,
    canonical_uri,
    object_body,
    object_key,
    object_url,
    quote_key,
    sigv4_headers,
)
from auditkeep.errors import ValidationFailed
from auditkeep.model import prepare_event
from auditkeep.store.base import StoredEvent
from tests.conftest import event
from tests.delivery.s3server import HAVE_MOTO, MotoServer, moto_server, requires_moto, start_moto

__all__ = ["moto_server"]  # the fixture, imported to be found

LOOPBACK = NetGuard.from_setting("127.0.0.0/8")
BUCKET = "audit-archive"
DAY_US = 86_400 * 1_000_000
# 2026-11-22T00:00:00Z in microseconds
NOV_22 = int(datetime(2026, 11, 22, tzinfo=UTC).timestamp()) * 1_000_000


def stored_events(tenant: str, first_seq: int, n: int, received_at: int) -> list[StoredEvent]:
    """``n`` real prepared events with seqs ``first_seq..``, received 1 µs apart."""
    out = []
    for i in range(n):
        seq = first_seq + i
        prepared = prepare_event(event(f"{tenant}-{seq}"), tenant, received_at + i)
        out.append(StoredEvent(seq, prepared.occurred_at, prepared.leaf_hash, prepared.leaf_data))
    return out


def make_batch(
    first_seq: int, n: int, received_at: int = NOV_22, tenant: str = "acme", dest: str = "dst_s3"
) -> Batch:
    return Batch(1, tenant, dest, stored_events(tenant, first_seq, n, received_at))


# -- SigV4 ------------------------------------------------------------------------------------

AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def test_sigv4_matches_the_aws_documentation_examples() -> None:
    """The worked examples of "Signature Calculations for the Authorization Header" (S3 API
    reference), an answer independent of botocore."""
    now = datetime(2013, 5, 24, tzinfo=UTC)
    get = sigv4_headers(
        "GET",
        "https://examplebucket.s3.amazonaws.com/test.txt",
        region="us-east-1",
        access_key_id=AWS_KEY,
        secret_access_key=AWS_SECRET,
        payload_sha256=EMPTY_SHA256,
        headers={"Range": "bytes=0-9"},
        now=now,
    )
    assert get["authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    )
    assert get["x-amz-date"] == "20130524T000000Z"
    assert get["host"] == "examplebucket.s3.amazonaws.com"
    body = b"Welcome to Amazon S3."
    put = sigv4_headers(
        "PUT",
        "https://examplebucket.s3.amazonaws.com/" + quote_key("test$file.text"),
        region="us-east-1",
        access_key_id=AWS_KEY,
        secret_access_key=AWS_SECRET,
        payload_sha256=hashlib.sha256(body).hexdigest(),
        headers={
            "Date": "Fri, 24 May 2013 00:00:00 GMT",
            "x-amz-storage-class": "REDUCED_REDUNDANCY",
        },
        now=now,
    )
    assert put["authorization"].endswith(
        "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class, "
        "Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"
    )


def test_canonical_forms() -> None:
    # a raw character and its encoding are the same; "+" is a plus, "~" is unreserved
    assert (
        canonical_uri("/b/a b+c~d=e")
        == canonical_uri("/b/a%20b%2Bc~d%3De")
        == ("/b/a%20b%2Bc~d%3De")
    )
    assert canonical_uri("/b/%7e%c3%bc") == "/b/~%C3%BC"
    assert canonical_uri("/b/a%2Fb//./../c") == "/b/a%2Fb//./../c"  # S3: the key as it is
    assert canonical_uri("/a/./b/../c//d", "execute-api") == "/a/c/d"
    assert canonical_uri("/a%20b", "execute-api") == "/a%2520b"  # others: encoded twice
    assert canonical_uri("") == "/"
    assert canonical_query("uploads") == "uploads="
    assert canonical_query("b=2&a=2&a=1&c=x+y") == "a=1&a=2&b=2&c=x%2By"
    assert quote_key("a b/ü~+=") == "a%20b/%C3%BC~%2B%3D"
    with pytest.raises(ValueError, match="timezone-aware"):
        sigv4_headers(
            "GET",
            "https://h/",
            region="r",
            access_key_id="a",
            secret_access_key="s",
            payload_sha256=EMPTY_SHA256,
            headers={},
            now=datetime(2026, 1, 1),
        )


KEY_CHARS = st.characters(codec="utf-8")  # no surrogates
key_segments = st.one_of(
    st.text(KEY_CHARS, min_size=0, max_size=12),
    st.sampled_from([" ", "~", "+", "=", "a b", "ü", "日本", "%", "%2F", "a+b=c~d", ".", ".."]),
)
object_keys = st.lists(key_segments, min_size=1, max_size=5).map("/".join).filter(bool)
query_params = st.lists(
    st.tuples(st.text(KEY_CHARS, min_size=1, max_size=8), st.text(KEY_CHARS, max_size=8)),
    max_size=4,
)
header_values = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30)
header_names = st.sampled_from(
    [
        "Content-Type",
        "content-md5",
        "X-Amz-Meta-Batch",
        "x-amz-meta-note",
        "x-amz-storage-class",
        "Range",
        "Cache-Control",
        "User-Agent",
        "Expect",
    ]
)
endpoints = st.sampled_from(
    [
        "https://s3.eu-west-1.amazonaws.com",
        "https://bucket.s3.amazonaws.com:443",
        "http://127.0.0.1:9000",
        "http://localhost:80",
        "https://minio.example.org:8443",
        "http://[::1]:9000",
    ]
)
times = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC)
)
RAW_ESCAPES = {ord(c): f"%{ord(c):02X}" for c in "%?#\t\r\n"}
secrets_ = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=40)


def _botocore_authorization(
    signer: str, method: str, url: str, body: bytes, headers: Mapping[str, str], **kw: Any
) -> Any:
    from botocore import auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    cls = auth.S3SigV4Auth if signer == "s3" else auth.SigV4Auth
    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers))
    credentials = Credentials(kw["access_key_id"], kw["secret_access_key"])
    with mock.patch.object(auth, "get_current_datetime", lambda *a, **k: kw["now"]):
        cls(credentials, kw["service"], kw["region"]).add_auth(request)
    return request.headers


@pytest.mark.skipif(not HAVE_MOTO, reason="boto3 is not installed")
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    method=st.sampled_from(["PUT", "GET", "HEAD", "DELETE", "post"]),
    endpoint=endpoints,
    key=object_keys,
    query=query_params,
    headers=st.dictionaries(header_names, header_values, max_size=5),
    body=st.binary(max_size=64),
    region=st.sampled_from(["us-east-1", "eu-west-1", "auto", "ap-southeast-2"]),
    access_key_id=st.from_regex(r"[A-Z0-9]{16,20}", fullmatch=True),
    secret=secrets_,
    now=times,
)
def test_sigv4_equals_botocore_s3(
    method: str,
    endpoint: str,
    key: str,
    query: list[tuple[str, str]],
    headers: dict[str, str],
    body: bytes,
    region: str,
    access_key_id: str,
    secret: str,
    now: datetime,
) -> None:
    url = f"{endpoint}/bucket/{quote(key, safe='/~')}"
    if query:
        url += "?" + "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in query)
    kw: dict[str, Any] = dict(
        region=region, access_key_id=access_key_id, secret_access_key=secret, now=now
    )
    ours = sigv4_headers(
        method,
        url,
        service="s3",
        payload_sha256=hashlib.sha256(body).hexdigest(),
        headers=headers,
        **kw,
    )
    theirs = _botocore_authorization("s3", method, url, body, headers, service="s3", **kw)
    assert ours["authorization"] == theirs["Authorization"]
    assert ours["x-amz-date"] == theirs["X-Amz-Date"]
    assert ours["x-amz-content-sha256"] == theirs["X-Amz-Content-SHA256"]
    # a raw (unencoded) key signs the same as its encoding: only what would end the path, or
    # what URL parsing drops, is escaped
    raw_key = key.translate(RAW_ESCAPES)
    raw = sigv4_headers(
        method,
        url.replace(f"/bucket/{quote(key, safe='/~')}", f"/bucket/{raw_key}", 1),
        service="s3",
        payload_sha256=hashlib.sha256(body).hexdigest(),
        headers=headers,
        **kw,
    )
    assert raw["authorization"] == ours["authorization"]


@pytest.mark.skipif(not HAVE_MOTO, reason="boto3 is not installed")
@settings(max_examples=150, deadline=None)
@given(
    endpoint=endpoints,
    segments=st.lists(st.text(KEY_CHARS, min_size=1, max_size=8), min_size=1, max_size=4),
    query=query_params,
    headers=st.dictionaries(header_names, header_values, max_size=4),
    body=st.binary(max_size=32),
    secret=secrets_,
    now=times,
)
def test_sigv4_equals_botocore_other_services(
    endpoint: str,
    segments: list[str],
    query: list[tuple[str, str]],
    headers: dict[str, str],
    body: bytes,
    secret: str,
    now: datetime,
) -> None:
    url = f"{endpoint}/{'/'.join(quote(s, safe='~') for s in segments)}"
    if query:
        url += "?" + "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in query)
    kw: dict[str, Any] = dict(
        region="eu-west-1", access_key_id="AKIDEXAMPLE", secret_access_key=secret, now=now
    )
    ours = sigv4_headers(
        "POST",
        url,
        service="execute-api",
        payload_sha256=hashlib.sha256(body).hexdigest(),
        headers=headers,
        **kw,
    )
    headers_with_sha = {**headers, "X-Amz-Content-SHA256": hashlib.sha256(body).hexdigest()}
    theirs = _botocore_authorization(
        "v4", "POST", url, body, headers_with_sha, service="execute-api", **kw
    )
    assert ours["authorization"] == theirs["Authorization"]


# -- object names and bytes -------------------------------------------------------------------


def test_object_key_body_and_url() -> None:
    # received a second before midnight, occurred days earlier: the date is received_at's
    batch = make_batch(41, 3, received_at=NOV_22 + DAY_US - 1_000_000)
    assert object_key("auditkeep/", batch) == (
        "auditkeep/acme/2026/11/22/00000000000000000041-00000000000000000043.ndjson.gz"
    )
    again = make_batch(41, 3, received_at=NOV_22 + DAY_US - 1_000_000)
    assert object_body(batch) == object_body(again)  # mtime 0: same batch, same bytes
    lines = gzip.decompress(object_body(batch)).splitlines()
    assert [orjson.loads(line) for line in lines] == [ev.to_json() for ev in batch.events]
    assert object_url({"endpoint": "http://127.0.0.1:9000/", "bucket": "b"}, "p/a b") == (
        "http://127.0.0.1:9000/b/p/a%20b"
    )
    virtual = {"endpoint": "https://s3.eu-west-1.amazonaws.com", "bucket": "b", "path_style": False}
    assert object_url(virtual, "p/k.gz") == "https://b.s3.eu-west-1.amazonaws.com/p/k.gz"


def _config(**overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "endpoint": "http://127.0.0.1:9000",
        "bucket": BUCKET,
        "access_key_id": "AKIAEXAMPLE123",
    }
    config.update(overrides)
    return {k: v for k, v in config.items() if v is not None}


def test_config_accepted_with_defaults_applied_by_the_sender() -> None:
    kind = S3Kind()
    assert kind.name == "s3" and kind.credential_help == "secret access key"
    config = kind.check_config(_config(), LOOPBACK)
    assert config == _config()
    full = _config(region="eu-west-1", prefix="logs/source=auditkeep/", path_style=True)
    assert kind.check_config(full, LOOPBACK) == full
    assert kind.check_config(_config(prefix=""), LOOPBACK)["prefix"] == ""
    virtual = _config(endpoint="https://localhost:9000", path_style=False, bucket="archive")
    assert kind.check_config(virtual, LOOPBACK) == virtual
    sender = kind.make_sender(config, Secrets(current="s3cr3t"), SenderContext(guard=LOOPBACK))
    try:
        assert (sender.region, sender.prefix) == ("us-east-1", "auditkeep/")
    finally:
        sender.close()
    with pytest.raises(ValueError, match="secret access key"):
        kind.make_sender(config, Secrets(), SenderContext(guard=LOOPBACK))
    with pytest.raises(ValueError, match="white space"):
        kind.check_secret(" abc")


@pytest.mark.parametrize(
    ("overrides", "path"),
    [
        ({"bucket": "Audit"}, "config.bucket"),
        ({"bucket": "ab"}, "config.bucket"),
        ({"bucket": "a" * 64}, "config.bucket"),
        ({"bucket": "audit..logs"}, "config.bucket"),
        ({"bucket": "audit-.logs"}, "config.bucket"),
        ({"bucket": "audit_logs"}, "config.bucket"),
        ({"bucket": "-audit"}, "config.bucket"),
        ({"bucket": "192.168.10.1"}, "config.bucket"),
        ({"bucket": "xn--audit"}, "config.bucket"),
        ({"bucket": "audit-s3alias"}, "config.bucket"),
        ({"prefix": "/audit/"}, "config.prefix"),
        ({"prefix": "a//b/"}, "config.prefix"),
        ({"prefix": "./a/"}, "config.prefix"),
        ({"prefix": "a/../b/"}, "config.prefix"),
        ({"prefix": "a b/"}, "config.prefix"),
        ({"prefix": "ü/"}, "config.prefix"),
        ({"prefix": "a+b/"}, "config.prefix"),
        ({"prefix": "x" * 513}, "config.prefix"),
        ({"endpoint": "ftp://127.0.0.1"}, "config.endpoint"),
        ({"endpoint": "127.0.0.1:9000"}, "config.endpoint"),
        ({"endpoint": "http://127.0.0.1:9000/bucket"}, "config.endpoint"),
        ({"endpoint": "http://127.0.0.1:9000?x=1"}, "config.endpoint"),
        ({"endpoint": "http://k:s@127.0.0.1:9000"}, "config.endpoint"),
        ({"endpoint": "http://127.0.0.1:99999"}, "config.endpoint"),
        ({"region": "eu west 1"}, "config.region"),
        ({"region": "eu/west"}, "config.region"),
        ({"access_key_id": "AK ID"}, "config.access_key_id"),
        ({"access_key_id": "AK/ID"}, "config.access_key_id"),
        ({"path_style": False}, "config.path_style"),  # an IP address has no subdomains
        (
            {"endpoint": "https://localhost:9000", "path_style": False, "bucket": "a.b.c"},
            "config.path_style",
        ),
        ({"path_style": "yes"}, "config.path_style"),
        ({"bucket": None}, "config.bucket"),
        ({"tls": True}, "config.tls"),
    ],
)
def test_config_rejected(overrides: dict[str, Any], path: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        S3Kind().check_config(_config(**overrides), LOOPBACK)
    assert [e["path"] for e in info.value.errors or ()] == [path]


def test_netguard_refuses_loopback_unless_allowed() -> None:
    with pytest.raises(ValidationFailed) as info:
        S3Kind().check_config(_config(), NetGuard())
    [error] = info.value.errors or [{}]
    assert error["path"] == "config.endpoint"
    assert "127.0.0.1" in error["message"] and "delivery_allow_networks" in error["message"]
    assert S3Kind().check_config(_config(), NetGuard.from_setting("127.0.0.0/8")) == _config()


# -- outcome mapping (a scripted HTTP answer) -------------------------------------------------

SECRET = "sEcReT/KeY+forTests0123456789abcdefghij"


def scripted(
    handler: Callable[[httpx.Request], httpx.Response], guard: NetGuard = LOOPBACK
) -> tuple[S3Sender, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        request.read()
        seen.append(request)
        return handler(request)

    sender = S3Sender(
        _config(region="eu-west-1"),
        Secrets(current=SECRET),
        SenderContext(guard=guard, timeout=5.0),
        transport=httpx.MockTransport(record),
    )
    return sender, seen


def _xml(code: str, message: str, extra: str = "") -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
        f"<Message>{message}</Message>{extra}<RequestId>R1</RequestId></Error>"
    ).encode()


def test_the_request_a_sender_makes() -> None:
    sender, seen = scripted(lambda request: httpx.Response(200, headers={"ETag": '"x"'}))
    batch = make_batch(1, 4)
    sender.send(batch)
    sender.close()
    [request] = seen
    body = object_body(batch)
    assert request.method == "PUT"
    assert str(request.url) == (
        "http://127.0.0.1:9000/audit-archive/auditkeep/acme/2026/11/22/"
        "00000000000000000001-00000000000000000004.ndjson.gz"
    )
    assert request.content == body
    h = request.headers
    assert h["content-type"] == "application/gzip" and "content-encoding" not in h
    assert h["x-amz-content-sha256"] == hashlib.sha256(body).hexdigest()
    assert h["content-md5"] == base64.b64encode(hashlib.md5(body).digest()).decode()
    assert h["x-amz-meta-auditkeep-batch-id"] == "dst_s3-1-4"
    assert (h["x-amz-meta-auditkeep-first-seq"], h["x-amz-meta-auditkeep-last-seq"]) == ("1", "4")
    assert h["x-amz-meta-auditkeep-events"] == "4"
    assert h["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE123/")
    assert "/eu-west-1/s3/aws4_request" in h["authorization"]
    assert SECRET not in str(request.headers.raw)


@pytest.mark.parametrize(
    ("response", "status", "retry_after", "words"),
    [
        (
            httpx.Response(503, headers={"Retry-After": "7"}, content=_xml("SlowDown", "Reduce")),
            503,
            7.0,
            ["503", "SlowDown: Reduce"],
        ),
        (httpx.Response(429, headers={"Retry-After": "2"}), 429, 2.0, ["429", "no error body"]),
        (
            httpx.Response(500, content=_xml("InternalError", "We a&amp;re sorry")),
            500,
            None,
            ["InternalError: We a&re sorry"],
        ),
        (
            httpx.Response(403, content=_xml("AccessDenied", "Access Denied")),
            403,
            None,
            ["AccessDenied: Access Denied"],
        ),
        (
            httpx.Response(
                301,
                headers={"Location": "http://127.0.0.1:1/"},
                content=_xml("PermanentRedirect", "Use the endpoint", "<Endpoint>e.x</Endpoint>"),
            ),
            301,
            None,
            ["PermanentRedirect", "endpoint: e.x"],
        ),
        (
            httpx.Response(400, content=b"<html>proxy error</html>" * 10_000),
            400,
            None,
            ["no error body"],
        ),
    ],
)
def test_failures_are_mapped(
    response: httpx.Response, status: int, retry_after: float | None, words: list[str]
) -> None:
    sender, seen = scripted(lambda request: response)
    with pytest.raises(DeliveryFailed) as info:
        sender.send(make_batch(1, 2))
    sender.close()
    assert len(seen) == 1  # redirects are not followed; the sender never retries itself
    assert (info.value.status, info.value.retry_after) == (status, retry_after)
    for word in words:
        assert word in info.value.message
    assert "s3://audit-archive/auditkeep/acme/2026/11/22/" in info.value.message
    assert len(info.value.message) < 2000


def test_a_timeout_and_an_echoed_secret() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("read timed out", request=request)

    sender, _ = scripted(slow)
    with pytest.raises(DeliveryFailed, match="timed out writing s3://") as info:
        sender.send(make_batch(1, 1))
    assert info.value.status is None
    sender.close()
    # a hostile or broken server that echoes the secret does not get it into the message
    sender, _ = scripted(lambda r: httpx.Response(400, content=_xml("Bad", f"key {SECRET}")))
    with pytest.raises(DeliveryFailed) as info:
        sender.send(make_batch(1, 1))
    sender.close()
    assert SECRET not in info.value.message and "key [secret]" in info.value.message


# -- against a real S3-compatible server ------------------------------------------------------


@pytest.fixture(scope="module")
def s3(moto_server: MotoServer) -> MotoServer:
    moto_server.create_bucket(BUCKET)
    return moto_server


def sender_for(server: MotoServer, guard: NetGuard = LOOPBACK, **overrides: Any) -> S3Sender:
    secret = overrides.pop("secret", server.secret_access_key)
    access_key_id = overrides.pop("access_key_id", server.access_key_id)
    config = S3Kind().check_config(
        _config(endpoint=server.url, access_key_id=access_key_id, **overrides), guard
    )
    return S3Kind().make_sender(config, Secrets(current=secret), SenderContext(guard, timeout=5))


def read_objects(server: MotoServer, prefix: str, bucket: str = BUCKET) -> dict[str, Any]:
    """key -> the GetObject answer with its body read (``Body`` bytes)."""
    client = server.client()
    out: dict[str, Any] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            answer = client.get_object(Bucket=bucket, Key=item["Key"])
            answer["Body"] = answer["Body"].read()
            out[item["Key"]] = answer
    return out


def events_of(answer: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in gzip.decompress(answer["Body"]).splitlines()]


def _key(prefix: str, batch: Batch) -> str:
    day = datetime.fromtimestamp(
        datetime.fromisoformat(orjson.loads(batch.events[0].leaf_data)["received_at"]).timestamp(),
        UTC,
    )
    return (
        f"{prefix}{batch.tenant_slug}/{day:%Y}/{day:%m}/{day:%d}/"
        f"{batch.first_seq:020d}-{batch.last_seq:020d}.ndjson.gz"
    )


def _check_exactly_once(objects: Mapping[str, Any], batches: list[Batch]) -> None:
    seen = Counter(ev["id"] for answer in objects.values() for ev in events_of(answer))
    expected = {ev.to_json()["id"] for b in batches for ev in b.events}
    assert set(seen) == expected and set(seen.values()) == {1}


@pytest.fixture
def batches() -> list[Batch]:
    return [
        make_batch(1, 1, received_at=NOV_22 + 3_600_000_000),
        make_batch(2, 5, received_at=NOV_22 + 7_200_000_000),
        # starts a moment before midnight and ends after it: the first event's date counts
        make_batch(7, 20, received_at=NOV_22 + DAY_US - 10),
        make_batch(27, 3, received_at=NOV_22 + 40 * DAY_US),
    ]


@requires_moto
def test_batches_become_objects(s3: MotoServer, batches: list[Batch]) -> None:
    sender = sender_for(s3, prefix="deliver/")
    try:
        for batch in batches:
            sender.send(batch)
    finally:
        sender.close()
    objects = read_objects(s3, "deliver/")
    assert sorted(objects) == [
        "deliver/acme/2026/11/22/00000000000000000001-00000000000000000001.ndjson.gz",
        "deliver/acme/2026/11/22/00000000000000000002-00000000000000000006.ndjson.gz",
        "deliver/acme/2026/11/22/00000000000000000007-00000000000000000026.ndjson.gz",
        "deliver/acme/2027/01/01/00000000000000000027-00000000000000000029.ndjson.gz",
    ]
    for batch in batches:
        answer = objects[_key("deliver/", batch)]
        got = events_of(answer)
        assert got == [ev.to_json() for ev in batch.events]
        assert [(e["seq"], e["id"], e["hash"]) for e in got] == [
            (ev.seq, orjson.loads(ev.leaf_data)["id"], ev.leaf_hash.hex()) for ev in batch.events
        ]
        assert answer["ContentType"] == "application/gzip"
        assert "ContentEncoding" not in answer
        assert answer["Metadata"] == {
            "auditkeep-batch-id": batch.batch_id,
            "auditkeep-first-seq": str(batch.first_seq),
            "auditkeep-last-seq": str(batch.last_seq),
            "auditkeep-events": str(len(batch.events)),
            "auditkeep-format": "ndjson",
        }
        assert answer["ETag"].strip('"') == hashlib.md5(answer["Body"]).hexdigest()
    _check_exactly_once(objects, batches)


@requires_moto
def test_a_retried_batch_rewrites_the_identical_object(
    s3: MotoServer, batches: list[Batch]
) -> None:
    first = sender_for(s3, prefix="retry/")
    for batch in batches:
        first.send(batch)
    before = {k: v["Body"] for k, v in read_objects(s3, "retry/").items()}
    first.send(batches[1])  # a retry by the same sender
    first.close()
    # a deliverer restart: a new sender, the same (fixed) batches rebuilt from the store
    again = [make_batch(b.first_seq, len(b.events), _received(b)) for b in batches[1:3]]
    second = sender_for(s3, prefix="retry/")
    try:
        for batch in again:
            second.send(batch)
    finally:
        second.close()
    objects = read_objects(s3, "retry/")
    assert {k: v["Body"] for k, v in objects.items()} == before
    _check_exactly_once(objects, batches)


def _received(batch: Batch) -> int:
    when = datetime.fromisoformat(orjson.loads(batch.events[0].leaf_data)["received_at"])
    return int(when.timestamp()) * 1_000_000 + when.microsecond


@requires_moto
def test_any_key_characters_reach_the_server_as_signed(s3: MotoServer) -> None:
    """The prefix is checked to S3's safe characters, but the signing and the wire encoding
    take any key: an unchecked prefix with spaces, unicode, ~ + = & and more round-trips."""
    prefix = "odd chars ü 日本 ~+=&$@;:,!'()*%/"
    config = _config(endpoint=s3.url, access_key_id=s3.access_key_id, prefix=prefix)
    sender = S3Sender(config, Secrets(current=s3.secret_access_key), SenderContext(LOOPBACK))
    batch = make_batch(1, 2)
    try:
        sender.send(batch)
    finally:
        sender.close()
    objects = read_objects(s3, "odd chars")
    assert list(objects) == [object_key(prefix, batch)]
    assert events_of(objects[object_key(prefix, batch)]) == [ev.to_json() for ev in batch.events]


@requires_moto
def test_netguard_checks_every_connection(s3: MotoServer) -> None:
    """A destination made while loopback was allowed, sent by a server that no longer
    allows it: the connection is refused before anything reaches the store."""
    config = S3Kind().check_config(
        _config(endpoint=s3.url, access_key_id=s3.access_key_id, prefix="guarded/"), LOOPBACK
    )
    ctx = SenderContext(NetGuard(), timeout=5)
    sender = S3Kind().make_sender(config, Secrets(current=s3.secret_access_key), ctx)
    with pytest.raises(DeliveryFailed, match="refused to connect") as info:
        sender.send(make_batch(1, 1))
    sender.close()
    assert "127.0.0.1" in info.value.message and read_objects(s3, "guarded/") == {}


@requires_moto
def test_refusals_from_the_server(s3: MotoServer) -> None:
    batch = make_batch(1, 2)
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"secret": "wrong-secret-key-0123456789"}, 403, "SignatureDoesNotMatch"),
        ({"access_key_id": "AKIANOSUCHKEY0000000"}, 403, "InvalidAccessKeyId"),
        ({"bucket": "no-such-bucket"}, 404, "NoSuchBucket"),
    ]
    for overrides, status, code in cases:
        secret = overrides.get("secret", s3.secret_access_key)
        sender = sender_for(s3, prefix="refused/", **overrides)
        try:
            with pytest.raises(DeliveryFailed) as info:
                sender.send(batch)
        finally:
            sender.close()
        assert info.value.status == status, info.value.message
        assert code in info.value.message
        assert secret not in info.value.message
        assert s3.secret_access_key not in info.value.message
    assert read_objects(s3, "refused/") == {}


@requires_moto
def test_netguard_refuses_the_real_server(s3: MotoServer) -> None:
    with pytest.raises(ValidationFailed, match=r"config\.endpoint"):
        sender_for(s3, guard=NetGuard(), prefix="guarded/")
    config = _config(endpoint=s3.url, access_key_id=s3.access_key_id, prefix="guarded/")
    sender = S3Kind().make_sender(
        config, Secrets(current=s3.secret_access_key), SenderContext(NetGuard(), timeout=5)
    )
    try:
        with pytest.raises(DeliveryFailed, match="refused to connect"):
            sender.send(make_batch(1, 1))
    finally:
        sender.close()
    assert read_objects(s3, "guarded/") == {}
    allowed = sender_for(s3, guard=NetGuard.from_setting("127.0.0.0/8"), prefix="guarded/")
    try:
        allowed.send(make_batch(1, 1))
    finally:
        allowed.close()
    assert len(read_objects(s3, "guarded/")) == 1


@pytest.fixture
def own_moto(tmp_path: Path) -> Iterator[MotoServer]:
    if not HAVE_MOTO:
        pytest.skip("moto[server] and boto3 are not installed")
    server = start_moto(tmp_path)
    try:
        yield server
    finally:
        server.stop()


@requires_moto
def test_server_stopped(own_moto: MotoServer) -> None:
    own_moto.create_bucket(BUCKET)
    sender = sender_for(own_moto, prefix="stop/")
    try:
        sender.send(make_batch(1, 1))
        own_moto.stop()
        with pytest.raises(DeliveryFailed, match=r"cannot reach 127\.0\.0\.1") as info:
            sender.send(make_batch(2, 1))
        assert info.value.status is None and info.value.retry_after is None
        assert own_moto.secret_access_key not in info.value.message
    finally:
        sender.close()
