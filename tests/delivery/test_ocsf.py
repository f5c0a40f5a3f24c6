"""The OCSF export (delivery/ocsf.py) checked against the real OCSF schema.

The schema is the OCSF 1.8.0 export bundled by the ``ocsf-json-schema`` package (the JSON
that schema.ocsf.io serves at /1.8.0/export/v2/schema: classes, objects, dictionary, types),
turned into a JSON Schema (draft 2020-12) per class by that package and checked with
``jsonschema``. On top of that, conventions the JSON Schema cannot state are checked from the
same schema data: every ``*_id`` enum value we emit has its sibling string set to the enum's
caption (or, for 99 "Other", to a label of its own), no deprecated attribute is used, and
``type_uid`` is ``class_uid * 100 + activity_id``. Nothing here is a hand-written copy of the
schema: the expected captions, enums and required attributes all come from the export.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import cache
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from ocsf_json_schema import OcsfJsonSchemaEmbedded, get_ocsf_schema, get_packaged_versions

from auditkeep.delivery.formats import FORMATS
from auditkeep.delivery.ocsf import (
    ACCOUNT_CHANGE,
    ACTIVITY_NAMES,
    API_ACTIVITY,
    AUTHENTICATION,
    CLASSES,
    ENTITY_MANAGEMENT,
    OCSF_VERSION,
    OTHER,
    PRODUCT,
    classify,
    to_ocsf,
)
from auditkeep.model import prepare_event
from auditkeep.store.base import StoredEvent
from auditkeep_client.schema import format_timestamp, normalize_event, parse_timestamp
from tests.conftest import REPO, event

MAPPED_CLASSES = (API_ACTIVITY, AUTHENTICATION, ACCOUNT_CHANGE, ENTITY_MANAGEMENT)
HASH = "ab" * 32

# -- the real schema --------------------------------------------------------------------------


@cache
def ocsf_export() -> dict[str, Any]:
    """The compiled OCSF schema (schema.ocsf.io export) of the version we emit."""
    schema: dict[str, Any] = get_ocsf_schema(version=OCSF_VERSION)
    assert schema["version"] == OCSF_VERSION
    return schema


@cache
def class_def(class_uid: int) -> dict[str, Any]:
    """The export's definition of one class (attributes with requirement, enum, sibling)."""
    for definition in ocsf_export()["classes"].values():
        if definition["uid"] == class_uid:
            return dict(definition)
    raise KeyError(class_uid)


@cache
def validator(class_uid: int) -> Draft202012Validator:
    """A JSON Schema validator for one OCSF class, with every object it uses embedded."""
    embedded = OcsfJsonSchemaEmbedded(ocsf_export())
    schema = embedded.get_class_schema(embedded.lookup_class_name_from_uid(class_uid))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def convention_problems(
    instance: dict[str, Any], definition: dict[str, Any], path: str
) -> list[str]:
    """What the schema data says is wrong beyond JSON Schema: enum siblings, deprecation."""
    problems: list[str] = []
    attributes = definition.get("attributes") or {}
    for key, value in instance.items():
        spec = attributes.get(key)
        where = f"{path}.{key}" if path else key
        if spec is None:
            continue  # the JSON Schema reports unknown attributes
        if "@deprecated" in spec:
            problems.append(f"{where} is deprecated in OCSF {OCSF_VERSION}")
        enum, sibling = spec.get("enum"), spec.get("sibling")
        if enum and sibling and sibling in attributes:
            label = instance.get(sibling)
            caption = enum.get(str(value), {}).get("caption")
            if value == OTHER:
                if not isinstance(label, str) or not label:
                    problems.append(f"{where} is 99 (Other) but {sibling} has no label")
            elif label != caption:
                problems.append(f"{where}={value}: {sibling} is {label!r}, not {caption!r}")
        object_type = spec.get("object_type")
        if spec.get("type") == "object_t" and object_type and object_type != "object":
            child_def = ocsf_export()["objects"][object_type]
            items = value if isinstance(value, list) else [value]
            for i, item in enumerate(items):
                if isinstance(item, dict):
                    sub = f"{where}[{i}]" if isinstance(value, list) else where
                    problems += convention_problems(item, child_def, sub)
    return problems


def assert_valid_ocsf(out: dict[str, Any]) -> None:
    """``out`` is a valid OCSF event of its class, as JSON (after an encode/decode cycle)."""
    out = orjson.loads(orjson.dumps(out))
    class_uid = out["class_uid"]
    assert class_uid in MAPPED_CLASSES
    errors = sorted(validator(class_uid).iter_errors(out), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(
        f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message[:300]}" for e in errors
    )
    problems = convention_problems(out, class_def(class_uid), "")
    assert not problems, "\n".join(problems)
    assert out["type_uid"] == class_uid * 100 + out["activity_id"]
    assert out["metadata"]["version"] == OCSF_VERSION


def served(raw: dict[str, Any], *, tenant: str = "acme", seq: int = 7) -> dict[str, Any]:
    """``raw`` as the API serves it: normal form plus tenant, received_at, seq and hash."""
    ev, occurred = normalize_event(raw)
    ev["tenant"] = tenant
    ev["received_at"] = format_timestamp(occurred + 1_500)
    ev["seq"] = seq
    ev["hash"] = HASH
    return ev


# -- the schema source and the module's tables --------------------------------------------------


def test_schema_version_is_bundled_and_tables_match_it() -> None:
    assert OCSF_VERSION in get_packaged_versions()
    categories = ocsf_export()["categories"]["attributes"]
    for class_uid in MAPPED_CLASSES:
        definition = class_def(class_uid)
        class_name, category_uid, category_name = CLASSES[class_uid]
        assert definition["caption"] == class_name
        assert definition["category_uid"] == category_uid
        assert categories[definition["category"]]["caption"] == category_name
        enum = definition["attributes"]["activity_id"]["enum"]
        type_enum = definition["attributes"]["type_uid"]["enum"]
        for activity_id, name in ACTIVITY_NAMES[class_uid].items():
            assert enum[str(activity_id)]["caption"] == name
            type_uid = str(class_uid * 100 + activity_id)
            assert type_enum[type_uid]["caption"] == f"{class_name}: {name}"


def test_required_attributes_come_from_the_schema() -> None:
    """A guard that the generated JSON Schema really carries the class requirements."""
    for class_uid in MAPPED_CLASSES:
        required = set(validator(class_uid).schema["required"])
        expected = {
            name
            for name, spec in class_def(class_uid)["attributes"].items()
            if spec.get("requirement") == "required" and not spec.get("profiles")
        }
        assert required == expected
        assert {"metadata", "time", "class_uid", "activity_id", "severity_id"} <= required


@pytest.mark.parametrize(
    "mistake",
    [
        "drop user",
        "drop service",
        "unknown attribute",
        "activity_id of another class",
        "wrong sibling",
        "bad ip",
        "string time",
        "empty product",
    ],
)
def test_the_checks_catch_mistakes(mistake: str) -> None:
    """The validation is real: small breakages of a valid event are each reported."""
    out = orjson.loads(orjson.dumps(to_ocsf(served(event(1)))))
    assert_valid_ocsf(out)
    if mistake == "drop user":
        del out["user"]
    elif mistake == "drop service":  # Authentication needs service or dst_endpoint
        del out["service"]
    elif mistake == "unknown attribute":
        out["actor"]["user"]["login"] = "ada"
    elif mistake == "activity_id of another class":
        out["activity_id"], out["type_uid"] = 10, 300210
    elif mistake == "wrong sibling":
        out["status"] = "Failure"
    elif mistake == "bad ip":
        out["src_endpoint"]["ip"] = "not-an-ip"
    elif mistake == "string time":
        out["time"] = str(out["time"])
    else:
        out["metadata"]["product"] = {}
    with pytest.raises(AssertionError):
        assert_valid_ocsf(out)


# -- explicit examples ------------------------------------------------------------------------


def test_login_event_in_full() -> None:
    ev = served(event(1, category="access", context={"ip": "203.0.113.9", "user_agent": "ua/1"}))
    out = to_ocsf(ev)
    assert out == {
        "class_uid": 3002,
        "class_name": "Authentication",
        "category_uid": 3,
        "category_name": "Identity & Access Management",
        "activity_id": 1,
        "activity_name": "Logon",
        "type_uid": 300201,
        "type_name": "Authentication: Logon",
        "severity_id": 1,
        "severity": "Informational",
        "status_id": 1,
        "status": "Success",
        "time": 1795428000000,
        "message": "user.login by user user_1 on document doc_1",
        "metadata": {
            "version": OCSF_VERSION,
            "product": PRODUCT,
            "uid": "evt-1",
            "event_code": "user.login",
            "original_time": "2026-11-23T10:00:00.000000Z",
            "labels": ["access"],
            "logged_time": 1795428000001,
            "tenant_uid": "acme",
            "sequence": 7,
        },
        "actor": {"user": {"uid": "user_1", "type_id": 1, "type": "User", "name": "Ada"}},
        "src_endpoint": {"ip": "203.0.113.9"},
        "http_request": {"user_agent": "ua/1"},
        "user": {"uid": "user_1", "type_id": 1, "type": "User", "name": "Ada"},
        "service": {"name": "acme"},
        "unmapped": {
            "seq": 7,
            "hash": HASH,
            "metadata": {"plan": "pro", "attempt": 1},
            "targets": [{"id": "doc_1", "type": "document"}],
        },
    }
    assert_valid_ocsf(out)
    assert PRODUCT["name"] == "auditkeep"


def test_http_request_from_the_middleware_is_api_activity() -> None:
    meta = {
        "method": "GET",
        "path": "/v1/items/9",
        "route": "/v1/items/{id}",
        "status": 200,
        "latency_ms": 12.6,
        "request_bytes": 0,
        "response_bytes": 512,
        "query": {"q": "x"},
    }
    ctx = {"ip": "2001:db8::1", "user_agent": "curl/8", "request_id": "req-9", "session_id": "s1"}
    ev = served(
        event(2, action="http.request", category="access", targets=[], metadata=meta, context=ctx)
    )
    out = to_ocsf(ev)
    assert_valid_ocsf(out)
    assert (out["class_uid"], out["activity_id"], out["type_uid"]) == (6003, 2, 600302)
    assert out["activity_name"] == "Read"
    assert out["api"] == {
        "operation": "GET /v1/items/{id}",
        "request": {"uid": "req-9"},
        "response": {"code": 200},
    }
    assert out["http_request"] == {
        "user_agent": "curl/8",
        "http_method": "GET",
        "url": {"path": "/v1/items/9"},
        "body_length": 0,
    }
    assert out["http_response"] == {"code": 200, "body_length": 512, "latency": 13}
    assert out["status_code"] == "200"
    assert out["src_endpoint"] == {"ip": "2001:db8::1"}
    assert out["actor"]["session"] == {"uid": "s1"}
    assert out["metadata"]["correlation_uid"] == "req-9"
    assert out["unmapped"]["metadata"] == meta  # the metadata is kept whole


@pytest.mark.parametrize(
    ("method", "activity_id"),
    [("POST", 1), ("get", 2), ("HEAD", 2), ("PUT", 3), ("PATCH", 3), ("DELETE", 4), ("TRACE", 99)],
)
def test_http_method_decides_the_api_activity(method: str, activity_id: int) -> None:
    meta = {"method": method, "path": "/x", "status": 201}
    out = to_ocsf(served(event(3, action="http.request", category="access", metadata=meta)))
    assert_valid_ocsf(out)
    assert out["activity_id"] == activity_id
    names = ACTIVITY_NAMES[API_ACTIVITY]
    assert out["activity_name"] == ("http.request" if activity_id == OTHER else names[activity_id])


def test_failed_access_without_ip_or_http_details() -> None:
    raw = event(
        4,
        action="api.call",
        targets=[{"id": "inv_1", "type": "invoice", "name": "INV 1"}, {"id": "c", "type": "x"}],
        outcome="failure",
        reason="HTTP 403",
        context={},
        metadata={"method": 5, "status": True, "latency_ms": "slow"},
        category="security",
    )
    out = to_ocsf(served(raw))
    assert_valid_ocsf(out)
    assert out["class_uid"] == API_ACTIVITY and out["activity_id"] == OTHER
    assert (out["status_id"], out["status"], out["status_detail"]) == (2, "Failure", "HTTP 403")
    assert (out["severity_id"], out["severity"]) == (3, "Medium")
    assert out["src_endpoint"] == {"name": "unknown"}  # required in API Activity
    assert out["api"] == {"operation": "api.call"}
    assert "http_request" not in out and "http_response" not in out
    assert out["resources"] == [
        {"uid": "inv_1", "name": "INV 1", "type": "invoice", "role_id": 1, "role": "Target"},
        {"uid": "c", "type": "x", "role_id": 1, "role": "Target"},
    ]
    assert "targets" not in out["unmapped"]


def test_account_created_by_an_admin() -> None:
    raw = event(
        5,
        action="user.created",
        actor={"id": "adm", "type": "admin"},
        targets=[{"id": "u9", "type": "user", "name": "bob"}, {"id": "t1", "type": "team"}],
    )
    out = to_ocsf(served(raw))
    assert_valid_ocsf(out)
    assert (out["class_uid"], out["activity_id"], out["activity_name"]) == (3001, 1, "Create")
    assert out["user"] == {"uid": "u9", "type_id": 1, "type": "User", "name": "bob"}
    assert out["actor"]["user"] == {"uid": "adm", "type_id": 2, "type": "Admin"}
    assert out["unmapped"]["targets"] == [{"id": "t1", "type": "team"}]


def test_role_attached_to_a_user_becomes_a_policy() -> None:
    raw = event(
        6,
        action="role.assigned",
        targets=[{"id": "r_admin", "type": "role", "name": "Admin"}, {"id": "u2", "type": "user"}],
    )
    out = to_ocsf(served(raw))
    assert_valid_ocsf(out)
    assert (out["activity_id"], out["activity_name"]) == (7, "Attach Policy")
    assert out["user"]["uid"] == "u2"
    assert out["policies"] == [{"uid": "r_admin", "name": "Admin", "type": "role"}]
    assert "targets" not in out["unmapped"]
    revoked = to_ocsf(served({**raw, "action": "user.role_revoked"}))
    assert_valid_ocsf(revoked)
    assert (revoked["activity_id"], revoked["activity_name"]) == (8, "Detach Policy")


def test_role_updated_is_account_change_other() -> None:
    raw = event(7, action="role.updated", targets=[{"id": "r1", "type": "role"}])
    out = to_ocsf(served(raw))
    assert_valid_ocsf(out)
    assert (out["class_uid"], out["activity_id"]) == (3001, 99)
    assert out["activity_name"] == "role.updated"
    assert out["type_name"] == "Account Change: Other"
    assert out["user"] == {"uid": "r1", "type_id": 99, "type": "role"}


@pytest.mark.parametrize(
    ("action", "activity_id"),
    [("password.changed", 3), ("user.password_reset", 4), ("mfa.enabled", 10), ("mfa.removed", 11)],
)
def test_self_service_credential_changes_are_on_the_actor(action: str, activity_id: int) -> None:
    out = to_ocsf(served(event(8, action=action, targets=[{"id": "d", "type": "document"}])))
    assert_valid_ocsf(out)
    assert (out["class_uid"], out["activity_id"]) == (ACCOUNT_CHANGE, activity_id)
    assert out["user"] == out["actor"]["user"]
    assert out["unmapped"]["targets"] == [{"id": "d", "type": "document"}]


def test_authentication_details_from_the_action() -> None:
    ctx = {"ip": "198.51.100.1", "session_id": "sess-1"}
    saml = to_ocsf(served(event(9, action="saml.login_failed", outcome="failure", context=ctx)))
    assert_valid_ocsf(saml)
    assert (saml["activity_id"], saml["auth_protocol_id"], saml["auth_protocol"]) == (1, 5, "SAML")
    assert saml["session"] == {"uid": "sess-1"} == saml["actor"]["session"]
    assert saml["status_id"] == 2 and saml["severity_id"] == 2

    mfa = to_ocsf(served(event(10, action="mfa.totp_verified", targets=[])))
    assert_valid_ocsf(mfa)
    assert (mfa["class_uid"], mfa["activity_id"], mfa["activity_name"]) == (
        3002,
        99,
        "mfa.totp_verified",
    )
    assert mfa["is_mfa"] is True
    assert mfa["auth_factors"] == [{"factor_type_id": 7, "factor_type": "OTP"}]

    pwd = to_ocsf(served(event(11, action="password.rejected", outcome="failure", targets=[])))
    assert_valid_ocsf(pwd)
    assert pwd["auth_factors"] == [{"factor_type_id": 11, "factor_type": "Password"}]


def test_authentication_user_and_service_from_targets() -> None:
    raw = event(
        12,
        action="session.revoked",
        actor={"id": "adm", "type": "admin"},
        targets=[{"id": "app1", "type": "app", "name": "Portal"}, {"id": "u3", "type": "user"}],
    )
    out = to_ocsf(served(raw))
    assert_valid_ocsf(out)
    assert (out["activity_id"], out["activity_name"]) == (2, "Logoff")
    assert out["user"]["uid"] == "u3" and out["actor"]["user"]["uid"] == "adm"
    assert out["service"] == {"uid": "app1", "name": "Portal"}


def test_everything_else_is_entity_management() -> None:
    doc = {  # the example of docs/event-schema.md
        "id": "0193a1b0-7c4e-7000-8000-000000000001",
        "action": "document.deleted",
        "occurred_at": "2026-11-23T18:20:19.250Z",
        "actor": {"id": "user_42", "type": "user", "name": "Ada Lovelace"},
        "targets": [{"id": "doc_9", "type": "document", "name": "Q3 plan"}],
        "outcome": "failure",
        "reason": "permission_denied",
        "context": {
            "ip": "203.0.113.9",
            "user_agent": "Mozilla/5.0",
            "request_id": "req_1",
            "session_id": "sess_7",
            "location": "Paris, FR",
        },
        "metadata": {"folder": "finance", "size_bytes": 18211},
        "category": "audit",
    }
    out = to_ocsf(served(doc))
    assert_valid_ocsf(out)
    assert (out["class_uid"], out["activity_id"], out["type_uid"]) == (3004, 4, 300404)
    assert out["entity"] == {"uid": "doc_9", "type_id": 99, "type": "document", "name": "Q3 plan"}
    assert out["time"] == 1795458019250
    assert out["metadata"]["original_time"] == "2026-11-23T18:20:19.250000Z"
    assert out["message"] == (
        "document.deleted by user user_42 on document doc_9: failure (permission_denied)"
    )
    assert out["unmapped"]["context"] == {"location": "Paris, FR"}

    no_target = to_ocsf(served({**doc, "action": "settings.updated", "targets": []}))
    assert_valid_ocsf(no_target)
    assert no_target["entity"] == {"name": "settings", "type_id": 99, "type": "settings"}
    device = to_ocsf(served({**doc, "action": "device.enrolled", "targets": []}))
    assert_valid_ocsf(device)
    assert device["entity"]["type"] == "Device" and device["activity_name"] == "Enroll"


def test_event_without_server_fields_and_with_offset_time() -> None:
    """to_ocsf also takes an event that never went through the server."""
    raw: dict[str, Any] = {
        "id": "x1",
        "action": "report.generated",
        "occurred_at": "2026-11-23T19:20:19.999999+01:00",
        "actor": {"id": "cron", "type": "system"},
    }
    out = to_ocsf(raw)
    assert_valid_ocsf(out)
    assert out["time"] == parse_timestamp(raw["occurred_at"]) // 1000
    assert "unmapped" not in out and "tenant_uid" not in out["metadata"]
    assert out["actor"]["user"]["type"] == "System"


def test_large_seq_stays_in_unmapped_only() -> None:
    out = to_ocsf(served(event(13, action="document.viewed"), seq=2**40))
    assert_valid_ocsf(out)
    assert "sequence" not in out["metadata"] and out["unmapped"]["seq"] == 2**40


def test_ocsf_export_format_writes_valid_lines() -> None:
    stored = []
    for n, action in enumerate(["user.login", "http.request", "role.assigned", "doc.moved"], 1):
        prepared = prepare_event(event(n, action=action), "acme", 1_795_428_000_000_000 + n)
        stored.append(StoredEvent(n, prepared.occurred_at, prepared.leaf_hash, prepared.leaf_data))
    body = FORMATS["ocsf"].page(stored)
    lines = body.decode().splitlines()
    assert len(lines) == 4 and body.endswith(b"\n")
    for n, line in enumerate(lines, 1):
        out = orjson.loads(line)
        assert_valid_ocsf(out)
        assert out["unmapped"]["seq"] == n
        assert out["unmapped"]["hash"] == stored[n - 1].leaf_hash.hex()


# -- the documented mapping table ----------------------------------------------------------------

_ROW = re.compile(r"^\| `([a-z0-9_.\-]+)` \| `?(\w+)`? \| (\d+) [^|]*\| (\d+) \| ([^|]+) \|$")


def doc_examples() -> list[tuple[str, str, int, int, str]]:
    """The rows of the "Examples" table of docs/ocsf.md."""
    text = (REPO / "docs" / "ocsf.md").read_text(encoding="utf-8")
    section = text.split("## Examples", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        m = _ROW.match(line.strip())
        if m:
            action, category, class_uid, activity_id, name = m.groups()
            rows.append((action, category, int(class_uid), int(activity_id), name.strip()))
    return rows


def test_docs_example_table_is_what_the_code_does() -> None:
    rows = doc_examples()
    assert len(rows) >= 40
    seen = {c for _, _, c, _, _ in rows}
    assert seen == set(MAPPED_CLASSES)
    wrong = []
    for action, category, class_uid, activity_id, name in rows:
        c = classify(action, category)
        if (c.class_uid, c.activity_id) != (class_uid, activity_id):
            wrong.append(f"{action} ({category}): code says {c.class_uid}/{c.activity_id}")
        expected_name = action if activity_id == OTHER else ACTIVITY_NAMES[class_uid][activity_id]
        if name.strip("`") != expected_name:
            wrong.append(f"{action}: documented activity_name {name!r}, code {expected_name!r}")
    assert not wrong, "\n".join(wrong)


def test_every_documented_example_validates() -> None:
    for action, category, _, _, _ in doc_examples():
        out = to_ocsf(served(event(action, action=action, category=category)))
        assert_valid_ocsf(out)


# -- generated events ---------------------------------------------------------------------------

SAFE = 2**53 - 1
texts = st.text(st.characters(codec="utf-8"), min_size=1, max_size=16)
ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,20}", fullmatch=True)
party_types = st.sampled_from(
    [
        "user",
        "admin",
        "system",
        "service",
        "anonymous",
        "api_key",
        "role",
        "permission",
        "document",
        "app",
        "service_account",
        "device",
        "group",
        "organization",
        "policy",
        "email",
    ]
) | st.from_regex(r"[a-z0-9_.\-]{1,12}", fullmatch=True)
NAMESPACES = [
    "user",
    "account",
    "service_account",
    "role",
    "password",
    "mfa",
    "session",
    "sso",
    "saml",
    "auth",
    "http",
    "api",
    "document",
    "settings",
    "group",
    "device",
    "admin.user",
    "org.role",
]
VERBS = [
    "login",
    "logout",
    "login_failed",
    "logged_in",
    "sign_out",
    "created",
    "deleted",
    "updated",
    "viewed",
    "enabled",
    "disabled",
    "assigned",
    "revoked",
    "reset",
    "reset_requested",
    "changed",
    "password_changed",
    "mfa_enabled",
    "role_removed",
    "verified",
    "challenge_failed",
    "failed",
    "locked_out",
    "unlocked",
    "impersonated",
    "moved",
    "enrolled",
    "suspended",
    "resumed",
    "request",
    "exception",
    "expired",
    "token_issued",
]
segment = st.from_regex(r"[a-z0-9_\-]{1,10}", fullmatch=True)
known_actions = st.builds(
    lambda n, v: f"{n}.{v}", st.sampled_from(NAMESPACES), st.sampled_from(VERBS)
)
actions = st.one_of(
    known_actions,
    known_actions,
    st.lists(segment, min_size=2, max_size=4).map(".".join),
    st.builds(lambda n, v: f"{n}.{v}", segment, st.sampled_from(VERBS)),
)
leaves = (
    st.none()
    | st.booleans()
    | st.integers(-SAFE, SAFE)
    | st.floats(-1e12, 1e12, allow_nan=False)
    | st.text(st.characters(codec="utf-8"), max_size=12)
)
keys = st.text(st.characters(codec="utf-8"), min_size=1, max_size=12)
level1 = leaves | st.lists(leaves, max_size=3) | st.dictionaries(keys, leaves, max_size=3)
level2 = leaves | st.lists(level1, max_size=3) | st.dictionaries(keys, level1, max_size=3)
http_metadata = st.fixed_dictionaries(
    {},
    optional={
        "method": st.sampled_from(["GET", "post", "PUT", "PATCH", "DELETE", "BREW", ""])
        | st.integers(0, 9),
        "path": st.sampled_from(["/", "/v1/items/9", ""]) | texts,
        "route": st.sampled_from(["/v1/items/{id}", ""]) | st.booleans(),
        "status": st.integers(-1, 700) | st.booleans() | texts,
        "latency_ms": st.floats(0, 1e7, allow_nan=False) | st.integers(-5, 10**9) | texts,
        "request_bytes": st.integers(-1, 10**12),
        "response_bytes": st.integers(-1, 10**12),
        "query": st.dictionaries(keys, st.text(max_size=5), max_size=2),
    },
)
metadata: st.SearchStrategy[dict[str, Any]] = st.one_of(
    st.just({}), st.dictionaries(keys, level2, max_size=4), http_metadata
)
#: The metadata the SDK middleware writes (clients/python/src/auditkeep_client/middleware.py).
middleware_metadata = st.fixed_dictionaries(
    {
        "method": st.sampled_from(["GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"]),
        "path": st.sampled_from(["/", "/v1/items/9", "/login"]),
        "status": st.integers(100, 599),
        "latency_ms": st.floats(0, 1e6, allow_nan=False),
        "request_bytes": st.integers(0, 10**9),
        "response_bytes": st.integers(0, 10**9),
    },
    optional={
        "route": st.just("/v1/items/{id}"),
        "query": st.dictionaries(keys, st.text(max_size=5), max_size=2),
        "client_id": texts,
    },
)
#: The middleware's (action, category) pairs.
MIDDLEWARE_ACTIONS = [
    ("http.request", "access"),
    ("http.exception", "error"),
    ("http.unauthorized", "security"),
    ("http.forbidden", "security"),
    ("http.slow_request", "performance"),
]
parties = st.fixed_dictionaries(
    {"id": st.text(st.characters(codec="utf-8"), min_size=1, max_size=20)},
    optional={"type": party_types, "name": texts},
)
targets = st.lists(
    st.fixed_dictionaries({"id": texts, "type": party_types}, optional={"name": texts}),
    max_size=4,
)
contexts = st.fixed_dictionaries(
    {},
    optional={
        "ip": st.ip_addresses().map(str),
        "user_agent": texts,
        "request_id": texts,
        "session_id": texts,
        "location": texts,
    },
)
# 1970-01-02 .. 2199-12-31, in microseconds
micros = st.integers(86_400_000_000, 7_258_118_400_000_000 - 1)


@st.composite
def auditkeep_events(draw: st.DrawFn, *, middleware: bool = False) -> dict[str, Any]:
    """A valid auditkeep event (it passes normalize_event) as the API serves it; with
    ``middleware``, one shaped like the SDK middleware's HTTP events."""
    raw: dict[str, Any] = {
        "action": draw(actions),
        "occurred_at": format_timestamp(draw(micros)),
        "actor": draw(parties),
    }
    optional: dict[str, Any] = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "id": ids,
                "targets": targets,
                "outcome": st.sampled_from(["success", "failure"]),
                "reason": texts,
                "context": contexts,
                "metadata": metadata,
                "category": st.sampled_from(
                    ["audit", "access", "error", "security", "performance", "system"]
                ),
            },
        )
    )
    raw.update(optional)
    if middleware:
        raw["action"], raw["category"] = draw(st.sampled_from(MIDDLEWARE_ACTIONS))
        raw["metadata"] = draw(middleware_metadata)
    ev, occurred = normalize_event(raw)
    ev["tenant"] = draw(st.from_regex(r"[a-z0-9][a-z0-9\-]{0,15}", fullmatch=True))
    ev["received_at"] = format_timestamp(occurred + draw(st.integers(0, 10**9)))
    ev["seq"] = draw(st.integers(1, SAFE))
    ev["hash"] = draw(st.binary(min_size=32, max_size=32)).hex()
    return ev


@given(st.one_of(auditkeep_events(), auditkeep_events(middleware=True)))
@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_generated_events_validate_against_the_ocsf_schema(ev: dict[str, Any]) -> None:
    assert_valid_ocsf(to_ocsf(ev))


def _dicts_with_uid(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, dict):
        found = [value] if "uid" in value else []
        for key, item in value.items():
            if key != "unmapped":
                found += _dicts_with_uid(item)
        return found
    if isinstance(value, list):
        return [d for item in value for d in _dicts_with_uid(item)]
    return []


@given(auditkeep_events())
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_nothing_is_lost(ev: dict[str, Any]) -> None:
    """Every auditkeep field can be read back from the OCSF event (docs/ocsf.md, "Fields")."""
    out = to_ocsf(ev)
    md, unmapped = out["metadata"], out.get("unmapped", {})
    context = ev["context"]
    assert md["uid"] == ev["id"]
    assert md["event_code"] == ev["action"]
    assert md["original_time"] == ev["occurred_at"]
    assert out["time"] == parse_timestamp(ev["occurred_at"]) // 1000
    assert md["logged_time"] == parse_timestamp(ev["received_at"]) // 1000
    assert md["tenant_uid"] == ev["tenant"]
    assert md["labels"] == [ev["category"]]
    assert out["status_id"] == {"success": 1, "failure": 2}[ev["outcome"]]
    assert out.get("status_detail") == ev.get("reason")
    user = out["actor"]["user"]
    assert (user["uid"], user.get("name")) == (ev["actor"]["id"], ev["actor"].get("name"))
    assert user["type"].lower() == ev["actor"]["type"]
    assert out.get("src_endpoint", {}).get("ip") == context.get("ip")
    assert out.get("http_request", {}).get("user_agent") == context.get("user_agent")
    assert md.get("correlation_uid") == context.get("request_id")
    assert out["actor"].get("session", {}).get("uid") == context.get("session_id")
    assert unmapped.get("context", {}).get("location") == context.get("location")
    assert unmapped.get("metadata", {}) == ev["metadata"]
    assert (unmapped["seq"], unmapped["hash"]) == (ev["seq"], ev["hash"])
    # every target is somewhere: an OCSF object with its uid (and name), or unmapped.targets
    mapped = {(d["uid"], d.get("name")) for d in _dicts_with_uid(out)}
    mapped |= {(t["id"], t.get("name")) for t in unmapped.get("targets", [])}
    for t in ev["targets"]:
        assert (t["id"], t.get("name")) in mapped


@given(
    st.lists(segment, min_size=2, max_size=5).map(".".join), st.sampled_from(["audit", "access"])
)
@settings(max_examples=300, deadline=None)
def test_any_action_gets_one_of_the_mapped_activities(action: str, category: str) -> None:
    c = classify(action, category)
    assert c.activity_id in ACTIVITY_NAMES[c.class_uid]
    if category == "access" and c.class_uid not in (AUTHENTICATION, ACCOUNT_CHANGE):
        assert c.class_uid == API_ACTIVITY


def test_time_is_floor_milliseconds() -> None:
    ev = served(event(14, occurred_at="1970-01-02T00:00:00.000999Z"))
    assert to_ocsf(ev)["time"] == 86_400_000
    late = served(event(15, occurred_at="2199-12-31T23:59:59.999999Z"))
    expected = datetime(2199, 12, 31, 23, 59, 59, 999000, tzinfo=UTC).timestamp() * 1000
    assert to_ocsf(late)["time"] == int(expected)
