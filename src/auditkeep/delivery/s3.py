"""S3-compatible object storage (AWS S3, MinIO, Ceph RGW, R2, ...).

Each batch becomes one object::

    <prefix><tenant>/<YYYY>/<MM>/<DD>/<first seq:020d>-<last seq:020d>.ndjson.gz

where the date is the UTC date of the batch's first event's ``received_at``. The body is the
batch's NDJSON (:func:`~auditkeep.delivery.formats.ndjson_lines`: one API event object per
line) compressed with gzip. The object is stored *as a gzip file*: ``Content-Type:
application/gzip`` and no ``Content-Encoding``, so every client downloads exactly the stored
bytes (with ``Content-Encoding: gzip`` browsers, curl ``--compressed`` and presigned-URL
downloads would transparently decompress and save NDJSON under a ``.gz`` name). The object's
user metadata says what it holds: ``x-amz-meta-auditkeep-batch-id``, ``-first-seq``,
``-last-seq``, ``-events`` and ``-format: ndjson``.

The name and the bytes are a function of the batch alone (gzip with ``mtime=0``, no file name,
fixed level; a batch is fixed once first attempted), so a retry, or the same batch sent again
after a restart, overwrites the object with identical bytes: the bucket holds every event
exactly once. (With bucket versioning on, a retry adds an identical version.) Two destinations
writing the same tenant to the same bucket and prefix would write overlapping objects; give
each its own prefix.

Requests are signed with AWS Signature Version 4 (:func:`sigv4_headers`, here rather than
boto3 so the server stays light), with the SHA-256 of the body signed
(``x-amz-content-sha256``) and a ``Content-MD5``, so the store rejects a body changed in
transit. Path-style addressing (``<endpoint>/<bucket>/<key>``) is the default, as every
S3-compatible server takes it; ``path_style: false`` uses virtual-host style
(``<bucket>.<endpoint host>``), as new AWS buckets prefer.

Outcomes: 2xx is delivered; anything else raises DeliveryFailed with the S3 error ``Code`` and
``Message`` from the XML body (``NoSuchBucket``, ``AccessDenied``, ``SignatureDoesNotMatch``,
...) and the status; ``Retry-After`` is honoured (429, 503 ``SlowDown``). The secret access key
never appears in a message. Redirects (a wrong region's ``PermanentRedirect``) are not followed.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import html
import ipaddress
import re
import string
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any, ClassVar
from urllib.parse import quote, unquote_to_bytes, urlsplit

import httpx
import orjson

from auditkeep.delivery.base import Batch, DeliveryFailed, Kind, Secrets, SenderContext
from auditkeep.delivery.formats import ndjson_lines
from auditkeep.delivery.httpout import USER_AGENT, guarded_client, retry_after_seconds
from auditkeep.delivery.netguard import BlockedAddress, NetGuard

DEFAULT_REGION = "us-east-1"
DEFAULT_PREFIX = "auditkeep/"
CONTENT_TYPE = "application/gzip"
GZIP_LEVEL = 6
ERROR_BODY_LIMIT = 64 * 1024  # bytes of an error answer read, at most

# -- AWS Signature Version 4 ------------------------------------------------------------------

ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
# Headers that proxies and HTTP stacks may add, drop or rewrite; never signed (as botocore).
UNSIGNED_HEADERS = frozenset(
    {
        "authorization",
        "baggage",
        "connection",
        "expect",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "traceparent",
        "tracestate",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "x-amzn-trace-id",
    }
)


def aws_quote(value: str | bytes) -> str:
    """URI-encode as SigV4 specifies: every byte but ``A-Z a-z 0-9 - . _ ~`` as ``%XX``
    (upper-case hex, UTF-8). A ``/`` is encoded too: quote object keys per segment."""
    return quote(value, safe="")


def quote_key(key: str) -> str:
    """An S3 object key as a URL path: each ``/``-separated segment :func:`aws_quote`-d."""
    return "/".join(aws_quote(segment) for segment in key.split("/"))


def _canonical_segments(path: str) -> list[str]:
    # Decode what is percent-encoded, then encode the SigV4 way: idempotent on an already
    # canonical path, and a raw character (a space, "+", "ü") is taken literally.
    return [aws_quote(unquote_to_bytes(segment)) for segment in path.split("/")]


def _remove_dot_segments(path: str) -> str:
    # RFC 3986 5.2.4 plus the removal of empty segments, as AWS services other than S3 want.
    out: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if out:
                out.pop()
        elif segment and segment != ".":
            out.append(segment)
    lead = "/" if path.startswith("/") else ""
    trail = "/" if path.endswith("/") and out else ""
    return lead + "/".join(out) + trail


def canonical_uri(path: str, service: str = "s3") -> str:
    """The CanonicalURI of a request path as sent (percent-encoded).

    S3 takes the path as it is (an object key may contain ``//``, ``.`` and ``..``), encoded
    once; other services normalize it and encode each segment twice.
    """
    if not path:
        return "/"
    if service == "s3":
        return "/".join(_canonical_segments(path))
    once = "/".join(_canonical_segments(_remove_dot_segments(path)))
    return quote(once, safe="/~") or "/"


def canonical_query(query: str) -> str:
    """The CanonicalQueryString: ``name=value`` pairs, each side encoded, sorted by name then
    value; a name without ``=`` gets an empty value. ``+`` is a literal plus, not a space."""
    pairs = []
    for item in query.split("&"):
        if not item:
            continue
        name, _, value = item.partition("=")
        pairs.append((aws_quote(unquote_to_bytes(name)), aws_quote(unquote_to_bytes(value))))
    return "&".join(f"{name}={value}" for name, value in sorted(pairs))


def host_header(url: str) -> str:
    """The Host header for ``url``: the lower-case host, with the port unless it is the
    scheme's default, IPv6 literals in brackets."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    if port is not None and port != {"http": 80, "https": 443}.get(parts.scheme):
        host = f"{host}:{port}"
    return host


def signing_key(secret_access_key: str, day: str, region: str, service: str) -> bytes:
    """HMAC chain ``AWS4<secret>`` -> date -> region -> service -> ``aws4_request``."""
    key = ("AWS4" + secret_access_key).encode()
    for part in (day, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def sigv4_headers(
    method: str,
    url: str,
    *,
    region: str,
    service: str = "s3",
    access_key_id: str,
    secret_access_key: str,
    payload_sha256: str,
    headers: Mapping[str, str],
    now: datetime,
) -> dict[str, str]:
    """The headers to send for a SigV4-signed request: ``headers`` (names lower-cased) plus
    ``host``, ``x-amz-date``, ``x-amz-content-sha256`` and ``authorization``.

    ``url`` is the URL as sent: its path and query percent-encoded (:func:`quote_key`). Every
    given header is signed except hop-by-hop ones and ``user-agent`` (:data:`UNSIGNED_HEADERS`).
    ``payload_sha256`` is the hex SHA-256 of the body (or ``UNSIGNED-PAYLOAD``); ``now`` must be
    timezone-aware.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    day = stamp[:8]
    parts = urlsplit(url)
    out: dict[str, str] = {}
    for name, value in headers.items():
        lname = name.strip().lower()
        if lname in out:
            raise ValueError(f"header {lname!r} is given twice")
        if lname != "authorization":
            out[lname] = value
    out.setdefault("host", host_header(url))
    out["x-amz-date"] = stamp
    out["x-amz-content-sha256"] = payload_sha256
    signed = sorted(name for name in out if name not in UNSIGNED_HEADERS)
    canonical_headers = "".join(f"{name}:{' '.join(out[name].split())}\n" for name in signed)
    signed_headers = ";".join(signed)
    canonical_request = "\n".join(
        [
            method.upper(),
            canonical_uri(parts.path, service),
            canonical_query(parts.query),
            canonical_headers,
            signed_headers,
            payload_sha256,
        ]
    )
    scope = f"{day}/{region}/{service}/aws4_request"
    string_to_sign = "\n".join(
        [ALGORITHM, stamp, scope, hashlib.sha256(canonical_request.encode()).hexdigest()]
    )
    key = signing_key(secret_access_key, day, region, service)
    signature = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    out["authorization"] = (
        f"{ALGORITHM} Credential={access_key_id}/{scope}, "
        f"SignedHeaders={signed_headers}, Signature={signature}"
    )
    return out


# -- objects ----------------------------------------------------------------------------------


def batch_date(batch: Batch) -> date:
    """The UTC date of the batch's first event's received_at (its occurred_at if it has none)."""
    first = batch.events[0]
    received = orjson.loads(first.leaf_data).get("received_at")
    if isinstance(received, str):
        try:
            return datetime.strptime(received[:10], "%Y-%m-%d").date()
        except ValueError:
            pass
    return datetime.fromtimestamp(first.occurred_at / 1_000_000, UTC).date()


def object_key(prefix: str, batch: Batch) -> str:
    day = batch_date(batch)
    return (
        f"{prefix}{batch.tenant_slug}/{day.year:04d}/{day.month:02d}/{day.day:02d}/"
        f"{batch.first_seq:020d}-{batch.last_seq:020d}.ndjson.gz"
    )


def object_body(batch: Batch) -> bytes:
    """The batch's NDJSON, gzip-compressed; the same bytes for the same batch."""
    return gzip.compress(ndjson_lines(batch.events), compresslevel=GZIP_LEVEL, mtime=0)


def object_url(config: Mapping[str, Any], key: str) -> str:
    """The object's URL, path-style (``<endpoint>/<bucket>/<key>``) or virtual-host style."""
    parts = urlsplit(config["endpoint"])
    if config.get("path_style", True):
        base = f"{parts.scheme}://{parts.netloc}/{config['bucket']}"
    else:
        base = f"{parts.scheme}://{config['bucket']}.{parts.netloc}"
    return f"{base}/{quote_key(key)}"


_CODE_RE = re.compile(r"<Code>([^<]{1,200})</Code>")
_MESSAGE_RE = re.compile(r"<Message>([^<]{0,1000})</Message>")
_ENDPOINT_RE = re.compile(r"<Endpoint>([^<]{1,300})</Endpoint>")


def s3_error(body: bytes) -> tuple[str | None, str | None]:
    """``(Code, Message)`` of an S3 XML error body; a regular expression, not an XML parser,
    as the body comes from a server the tenant chose."""
    text = body.decode("utf-8", errors="replace")

    def find(pattern: re.Pattern[str]) -> str | None:
        match = pattern.search(text)
        return " ".join(html.unescape(match.group(1)).split()) if match else None

    code, message = find(_CODE_RE), find(_MESSAGE_RE)
    endpoint = find(_ENDPOINT_RE)
    if endpoint and code in ("PermanentRedirect", "TemporaryRedirect"):
        message = f"{message or 'redirected'} (endpoint: {endpoint})"
    return code, message


class S3Sender:
    """PUTs each batch as one object. One httpx.Client per sender; :meth:`close` closes it."""

    def __init__(
        self,
        config: Mapping[str, Any],
        secrets: Secrets,
        ctx: SenderContext,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not secrets.current:
            raise ValueError("an s3 destination needs its secret access key as the secret")
        self.config = dict(config)
        self.bucket: str = config["bucket"]
        self.region: str = config.get("region") or DEFAULT_REGION
        self.prefix: str = config.get("prefix", DEFAULT_PREFIX)
        self.access_key_id: str = config["access_key_id"]
        self._secret = secrets.current
        self.ctx = ctx
        self.client = guarded_client(ctx, transport=transport)

    def send(self, batch: Batch) -> None:
        if not batch.events:
            return
        key = object_key(self.prefix, batch)
        url = object_url(self.config, key)
        if httpx.URL(url).raw_path.decode("ascii") != urlsplit(url).path:
            # the HTTP stack would send another path than the one signed (dot segments)
            raise DeliveryFailed(f"the object key {key!r} cannot be sent as it is")
        body = object_body(batch)
        headers = {
            "content-type": CONTENT_TYPE,
            "content-md5": base64.b64encode(
                hashlib.md5(body, usedforsecurity=False).digest()
            ).decode(),
            "x-amz-meta-auditkeep-batch-id": batch.batch_id,
            "x-amz-meta-auditkeep-first-seq": str(batch.first_seq),
            "x-amz-meta-auditkeep-last-seq": str(batch.last_seq),
            "x-amz-meta-auditkeep-events": str(len(batch.events)),
            "x-amz-meta-auditkeep-format": "ndjson",
        }
        try:
            self.ctx.guard.check_scheme(url)  # (the client checks each connection's address)
        except BlockedAddress as exc:
            raise DeliveryFailed(self._clean(f"refused to connect: {exc}")) from None
        signed = sigv4_headers(
            "PUT",
            url,
            region=self.region,
            access_key_id=self.access_key_id,
            secret_access_key=self._secret,
            payload_sha256=hashlib.sha256(body).hexdigest(),
            headers=headers,
            now=datetime.now(UTC),
        )
        where = f"s3://{self.bucket}/{key}"
        try:
            with self.client.stream(
                "PUT", url, content=body, headers={"user-agent": USER_AGENT, **signed}
            ) as response:
                if response.is_success:
                    return
                status = response.status_code
                retry_after = retry_after_seconds(response.headers.get("retry-after"))
                error = b""
                for chunk in response.iter_bytes():
                    error += chunk
                    if len(error) >= ERROR_BODY_LIMIT:
                        break
        except BlockedAddress as exc:
            raise DeliveryFailed(self._clean(f"refused to connect: {exc}")) from None
        except httpx.TimeoutException as exc:
            raise DeliveryFailed(
                self._clean(f"timed out writing {where}: {type(exc).__name__}")
            ) from None
        except httpx.HTTPError as exc:
            raise DeliveryFailed(
                self._clean(f"cannot reach {host_header(url)} to write {where}: {exc}")
            ) from None
        code, message = s3_error(error)
        what = f"{code}: {message}" if code and message else code or message or "no error body"
        raise DeliveryFailed(
            self._clean(f"the store answered {status} to the PUT of {where}: {what}"),
            status=status,
            retry_after=retry_after,
        )

    def _clean(self, message: str) -> str:
        """A message with the secret access key blanked, should anything ever echo it."""
        return message.replace(self._secret, "[secret]") if self._secret else message

    def close(self) -> None:
        self.client.close()


# -- the kind ---------------------------------------------------------------------------------

_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_BUCKET_LABEL_RE = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")
_RESERVED_BUCKET_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_RESERVED_BUCKET_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")
# S3's "safe characters" for object keys, "/", and "=" (Hive-style partitions: "source=x/")
PREFIX_CHARS = frozenset(string.ascii_letters + string.digits + "!-_.*'()/=")
PREFIX_MAX = 512
_REGION_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_ACCESS_KEY_RE = re.compile(r"[A-Za-z0-9._~+-]{3,128}")


def bucket_problem(bucket: str) -> str | None:
    """Why ``bucket`` is not a valid S3 bucket name (general purpose bucket rules), or None."""
    if not 3 <= len(bucket) <= 63:
        return "must be 3 to 63 characters"
    if _BUCKET_RE.fullmatch(bucket) is None:
        return (
            "may hold lower-case letters, digits, '.' and '-', "
            "and must begin and end with a letter or digit"
        )
    if any(_BUCKET_LABEL_RE.fullmatch(label) is None for label in bucket.split(".")):
        return "must not have '..', '.-' or '-.'"
    try:
        ipaddress.IPv4Address(bucket)
    except ValueError:
        pass
    else:
        return "must not be formatted as an IP address"
    if bucket.startswith(_RESERVED_BUCKET_PREFIXES) or bucket.endswith(_RESERVED_BUCKET_SUFFIXES):
        return "uses a prefix or suffix S3 reserves"
    return None


def prefix_problem(prefix: str) -> str | None:
    """Why ``prefix`` cannot start this destination's object keys, or None."""
    if len(prefix) > PREFIX_MAX:
        return f"must be at most {PREFIX_MAX} characters"
    bad = sorted(set(prefix) - PREFIX_CHARS)
    if bad:
        return (
            "may hold only letters, digits, '/', '=' and ! - _ . * ' ( ) (S3's safe characters); "
            f"not {''.join(bad)!r}"
        )
    if prefix.startswith("/"):
        return "must not start with '/'"
    if any(segment in ("", ".", "..") for segment in prefix.split("/")[:-1]):
        return "must not have empty, '.' or '..' path segments"
    return None


def endpoint_problem(endpoint: str) -> str | None:
    """Why ``endpoint`` is not an S3 endpoint URL (scheme and host, no path), or None."""
    parts = urlsplit(endpoint)
    if parts.scheme not in ("https", "http"):
        return "must start with https:// (or http://)"
    if not parts.hostname:
        return "must name a host"
    if parts.username or parts.password:
        return "must not hold credentials; the secret access key is the destination's secret"
    try:
        parts.port  # noqa: B018 - validates the port
    except ValueError as exc:
        return f"has an invalid port: {exc}"
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return "must be the service's base URL, without a path (the bucket is its own field)"
    return None


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class S3Kind(Kind):
    name = "s3"
    fields: ClassVar[Mapping[str, tuple[type, bool, str]]] = {
        "endpoint": (
            str,
            True,
            "The service's URL, e.g. https://s3.eu-west-1.amazonaws.com or http://minio:9000.",
        ),
        "bucket": (str, True, "The bucket the objects are written to (it must exist)."),
        "access_key_id": (str, True, "The access key id; its secret key is the secret."),
        "region": (str, False, f"The signing region (default {DEFAULT_REGION})."),
        "prefix": (
            str,
            False,
            f"Object names start with this, then <tenant>/<YYYY>/<MM>/<DD>/ "
            f"(default {DEFAULT_PREFIX!r}).",
        ),
        "path_style": (
            bool,
            False,
            "Path-style URLs <endpoint>/<bucket>/<key> (default true); "
            "false: virtual-host style <bucket>.<endpoint host>.",
        ),
    }
    credential_help = "secret access key"

    def check_values(self, config: dict[str, Any], guard: NetGuard) -> list[dict[str, str]]:
        errors: list[dict[str, str]] = []

        def problem(field: str, message: str | None) -> None:
            if message:
                errors.append({"path": f"config.{field}", "message": message})

        endpoint: str = config["endpoint"]
        bucket: str = config["bucket"]
        endpoint_error = endpoint_problem(endpoint)
        problem("endpoint", endpoint_error)
        problem("bucket", bucket_problem(bucket))
        if _ACCESS_KEY_RE.fullmatch(config["access_key_id"]) is None:
            problem("access_key_id", "must be 3 to 128 letters, digits or . _ ~ + -")
        if "region" in config and _REGION_RE.fullmatch(config["region"]) is None:
            problem("region", "must be 1 to 64 letters, digits, '-' or '_' (e.g. eu-west-1)")
        if "prefix" in config:
            problem("prefix", prefix_problem(config["prefix"]))
        if not config.get("path_style", True) and endpoint_error is None:
            host = urlsplit(endpoint).hostname or ""
            if _is_ip(host):
                problem("path_style", "virtual-host style needs a host name, not an IP address")
            elif "." in bucket and endpoint.startswith("https:"):
                problem(
                    "path_style",
                    "a bucket name with '.' does not match the TLS certificate of a "
                    "virtual-host style endpoint; use path style",
                )
        if endpoint_error is None:
            try:
                guard.check_url(endpoint)
            except BlockedAddress as exc:
                problem("endpoint", str(exc))
        return errors

    def check_secret(self, secret: str) -> None:
        super().check_secret(secret)
        if secret != secret.strip():
            raise ValueError("the secret access key must not start or end with white space")

    def make_sender(
        self, config: Mapping[str, Any], secrets: Secrets, ctx: SenderContext
    ) -> S3Sender:
        return S3Sender(config, secrets, ctx)


__all__ = ["S3Kind", "S3Sender", "object_body", "object_key", "quote_key", "sigv4_headers"]
