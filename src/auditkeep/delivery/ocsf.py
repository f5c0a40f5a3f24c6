"""OCSF export: one auditkeep event as one OCSF 1.8.0 event (docs/ocsf.md has the full mapping).

:func:`to_ocsf` maps an event as the API serves it (``StoredEvent.to_json()``: the normal form
plus ``tenant``, ``received_at``, ``seq`` and ``hash``) to exactly one of four OCSF classes:

- **Authentication (3002)**: logons, logoffs, sessions, impersonation, MFA and password checks;
- **Account Change (3001)**: accounts created/enabled/disabled/deleted/locked/unlocked,
  password changes and resets, MFA factors enabled/disabled, roles attached/detached;
- **API Activity (6003)**: category ``access`` and ``http.*``/``api.*`` actions (the SDK
  middleware's request events), with the HTTP details the middleware puts in ``metadata``;
- **Entity Management (3004)**: everything else, the first target being the managed entity.

The class and activity follow from the action's words (and the category), see
:func:`classify`; the answer per (action, category) is cached, since a tenant uses a few
hundred actions at most. Everything auditkeep has that OCSF has no attribute for (``seq``,
``hash``, ``metadata``, unmapped targets, ``context.location``) goes to ``unmapped`` under its
auditkeep name, so nothing is lost.

Hot path: this runs once per event of exports of millions, so the tables and the per-activity
header fields are built at import and the OCSF schema itself is never loaded here (the tests
validate the output against the real schema, see tests/delivery/test_ocsf.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Final

from auditkeep import __version__
from auditkeep_client.schema import parse_timestamp

__all__ = [
    "ACCOUNT_CHANGE",
    "ACTIVITY_NAMES",
    "API_ACTIVITY",
    "AUTHENTICATION",
    "CLASSES",
    "ENTITY_MANAGEMENT",
    "OCSF_VERSION",
    "OTHER",
    "PRODUCT",
    "Classification",
    "classify",
    "to_ocsf",
]

#: The OCSF schema version every exported event conforms to (``metadata.version``).
OCSF_VERSION: Final = "1.8.0"

#: ``metadata.product``: who produced the events.
PRODUCT: Final[dict[str, str]] = {
    "name": "auditkeep",
    "vendor_name": "auditkeep",
    "version": __version__,
}

API_ACTIVITY: Final = 6003
AUTHENTICATION: Final = 3002
ACCOUNT_CHANGE: Final = 3001
ENTITY_MANAGEMENT: Final = 3004
#: The activity_id for an activity the class has no value for; ``activity_name`` then holds
#: the auditkeep action (the OCSF convention for "Other": the source's own label).
OTHER: Final = 99

#: class_uid -> (class_name, category_uid, category_name), as in the OCSF schema.
CLASSES: Final[dict[int, tuple[str, int, str]]] = {
    API_ACTIVITY: ("API Activity", 6, "Application Activity"),
    AUTHENTICATION: ("Authentication", 3, "Identity & Access Management"),
    ACCOUNT_CHANGE: ("Account Change", 3, "Identity & Access Management"),
    ENTITY_MANAGEMENT: ("Entity Management", 3, "Identity & Access Management"),
}

#: class_uid -> activity_id -> activity_name: the activities this mapping emits, with the
#: captions of the class's ``activity_id`` enum.
ACTIVITY_NAMES: Final[dict[int, dict[int, str]]] = {
    API_ACTIVITY: {1: "Create", 2: "Read", 3: "Update", 4: "Delete", OTHER: "Other"},
    AUTHENTICATION: {1: "Logon", 2: "Logoff", 7: "Account Switch", OTHER: "Other"},
    ACCOUNT_CHANGE: {
        1: "Create",
        2: "Enable",
        3: "Password Change",
        4: "Password Reset",
        5: "Disable",
        6: "Delete",
        7: "Attach Policy",
        8: "Detach Policy",
        9: "Lock",
        10: "MFA Factor Enable",
        11: "MFA Factor Disable",
        12: "Unlock",
        OTHER: "Other",
    },
    ENTITY_MANAGEMENT: {
        1: "Create",
        2: "Read",
        3: "Update",
        4: "Delete",
        5: "Move",
        6: "Enroll",
        7: "Unenroll",
        8: "Enable",
        9: "Disable",
        10: "Activate",
        11: "Deactivate",
        12: "Suspend",
        13: "Resume",
        OTHER: "Other",
    },
}

# -- enums of OCSF objects (captions exactly as in the schema) --------------------------------

#: auditkeep outcome -> (status_id, status).
_STATUS: Final[dict[str, tuple[int, str]]] = {"success": (1, "Success"), "failure": (2, "Failure")}
#: severity_id -> severity.
_SEVERITY: Final[dict[int, str]] = {1: "Informational", 2: "Low", 3: "Medium"}
#: Categories whose failures are Medium rather than Low.
_SERIOUS_CATEGORIES: Final = frozenset({"security", "error"})
#: auditkeep party type -> (user.type_id, user.type); any other type is Other (99) and keeps
#: its auditkeep spelling in ``type``.
_USER_TYPES: Final[dict[str, tuple[int, str]]] = {
    "user": (1, "User"),
    "admin": (2, "Admin"),
    "system": (3, "System"),
    "service": (4, "Service"),
}
#: auditkeep target type -> (managed_entity.type_id, managed_entity.type).
_ENTITY_TYPES: Final[dict[str, tuple[int, str]]] = {
    "device": (1, "Device"),
    "user": (2, "User"),
    "group": (3, "Group"),
    "organization": (4, "Organization"),
    "policy": (5, "Policy"),
    "email": (6, "Email"),
}
#: word of the action -> (auth_protocol_id, auth_protocol).
_AUTH_PROTOCOLS: Final[dict[str, tuple[int, str]]] = {
    "ntlm": (1, "NTLM"),
    "kerberos": (2, "Kerberos"),
    "openid": (4, "OpenID"),
    "oidc": (4, "OpenID"),
    "saml": (5, "SAML"),
    "oauth": (6, "OAUTH 2.0"),
    "oauth2": (6, "OAUTH 2.0"),
    "radius": (10, "RADIUS"),
    "ldap": (12, "LDAP"),
}
#: word of the action -> (auth_factor.factor_type_id, factor_type).
_AUTH_FACTORS: Final[dict[str, tuple[int, str]]] = {
    "sms": (1, "SMS"),
    "push": (5, "Push Notification"),
    "otp": (7, "OTP"),
    "totp": (7, "OTP"),
    "hotp": (7, "OTP"),
    "u2f": (9, "U2F"),
    "webauthn": (10, "WebAuthn"),
    "passkey": (10, "WebAuthn"),
    "password": (11, "Password"),
    "passwords": (11, "Password"),
    "passphrase": (11, "Password"),
}
#: HTTP method -> API Activity activity_id (methods outside the OCSF http_method enum are
#: not copied into ``http_request``).
_HTTP_METHOD_ACTIVITY: Final[dict[str, int]] = {
    "GET": 2,
    "HEAD": 2,
    "OPTIONS": 2,
    "POST": 1,
    "PUT": 3,
    "PATCH": 3,
    "DELETE": 4,
    "TRACE": OTHER,
    "CONNECT": OTHER,
}

# -- the vocabulary of actions ----------------------------------------------------------------


def _words(*groups: str) -> frozenset[str]:
    return frozenset(w for g in groups for w in g.split())


#: Two consecutive words read as one.
_PAIRS: Final[dict[tuple[str, str], str]] = {
    ("log", "in"): "login",
    ("logged", "in"): "login",
    ("sign", "in"): "signin",
    ("signed", "in"): "signin",
    ("log", "on"): "logon",
    ("logged", "on"): "logon",
    ("log", "out"): "logout",
    ("logged", "out"): "logout",
    ("sign", "out"): "signout",
    ("signed", "out"): "signout",
    ("log", "off"): "logoff",
    ("logged", "off"): "logoff",
    ("sign", "up"): "signup",
    ("signed", "up"): "signup",
    ("locked", "out"): "locked",
    ("timed", "out"): "timeout",
    ("time", "out"): "timeout",
    ("set", "up"): "setup",
    ("two", "factor"): "2fa",
    ("multi", "factor"): "mfa",
    ("switch", "user"): "switch_user",
    ("switched", "user"): "switch_user",
}
#: Trailing words that tell the outcome, not the activity (``login_failed`` is a logon).
_OUTCOME_WORDS: Final = _words(
    "failed failure fail succeeded success successful ok attempt attempted denied rejected",
    "completed complete done error errored",
)
_LOGON: Final = _words("login logon signin")
_LOGOFF: Final = _words("logout logoff signout")
_AUTH_WORDS: Final = _words(
    "auth authn authenticate authenticated authentication sso", *_AUTH_PROTOCOLS
)
_SESSION: Final = _words("session sessions")
_SESSION_START: Final = _words(
    "created create started start opened open established began begun resumed new issued"
)
_SESSION_END: Final = _words(
    "ended end closed close terminated terminate revoked revoke expired expire destroyed",
    "deleted delete invalidated timeout killed logout signout logoff",
)
_MFA: Final = _words("mfa 2fa otp totp hotp webauthn passkey u2f")
_PASSWORD: Final = _words("password passwords passphrase")
_ROLE: Final = _words("role roles permission permissions privilege privileges")
_ACCOUNT: Final = _words("user users account accounts identity identities principal principals")
_GROUPISH: Final = _words("group groups team teams")
_API_NAMESPACES: Final = _words("http https api rest graphql grpc rpc")

_CREATE: Final = _words(
    "created create added add registered register provisioned invited uploaded imported",
    "generated issued inserted cloned duplicated submitted signup",
)
_READ: Final = _words(
    "viewed view read listed list fetched fetch get retrieved accessed opened downloaded",
    "download exported export searched search queried query shown previewed printed inspected",
)
_UPDATE: Final = _words(
    "updated update changed change modified modify edited edit renamed rename set configured",
    "patched replaced saved reordered tagged untagged rotated regenerated upgraded downgraded",
    "restored archived unarchived shared unshared",
)
_DELETE: Final = _words(
    "deleted delete removed remove destroyed purged erased trashed discarded deprovisioned",
    "offboarded",
)
_ENABLE: Final = _words("enabled enable")
_DISABLE: Final = _words("disabled disable")
_ACTIVATE: Final = _words("activated activate")
_DEACTIVATE: Final = _words("deactivated deactivate")
_SUSPEND: Final = _words("suspended suspend paused")
_RESUME: Final = _words("resumed resume unsuspended unpaused")

#: Entity Management: verb -> activity_id.
_ENTITY_VERBS: Final[dict[str, int]] = {
    **dict.fromkeys(_CREATE, 1),
    **dict.fromkeys(_READ, 2),
    **dict.fromkeys(_UPDATE, 3),
    **dict.fromkeys(_DELETE, 4),
    **dict.fromkeys(_words("moved move transferred relocated migrated"), 5),
    **dict.fromkeys(_words("enrolled enroll"), 6),
    **dict.fromkeys(_words("unenrolled unenroll"), 7),
    **dict.fromkeys(_ENABLE, 8),
    **dict.fromkeys(_DISABLE, 9),
    **dict.fromkeys(_ACTIVATE, 10),
    **dict.fromkeys(_DEACTIVATE, 11),
    **dict.fromkeys(_SUSPEND, 12),
    **dict.fromkeys(_RESUME, 13),
}
#: API Activity without an HTTP method: verb -> activity_id (Create/Read/Update/Delete).
_API_VERBS: Final[dict[str, int]] = {
    **dict.fromkeys(_CREATE, 1),
    **dict.fromkeys(_READ, 2),
    **dict.fromkeys(_UPDATE, 3),
    **dict.fromkeys(_DELETE, 4),
}
#: Account Change on an account (``user.*``, ``account.*``...): verb -> activity_id.
_ACCOUNT_VERBS: Final[dict[str, int]] = {
    **dict.fromkeys(_CREATE | _words("onboarded"), 1),
    **dict.fromkeys(
        _ENABLE | _ACTIVATE | _words("reactivated reactivate unsuspended unblocked unbanned"), 2
    ),
    **dict.fromkeys(_DISABLE | _DEACTIVATE | _words("suspended suspend blocked banned"), 5),
    **dict.fromkeys(_DELETE, 6),
    **dict.fromkeys(_words("locked lock lockout"), 9),
    **dict.fromkeys(_words("unlocked unlock"), 12),
}
_ROLE_ATTACH: Final = _words(
    "assigned assign granted grant added add attached attach given promoted elevated"
)
_ROLE_DETACH: Final = _words(
    "unassigned unassign revoked revoke removed remove detached detach demoted withdrawn"
)
_MFA_ENABLE: Final = _words(
    "enabled enable added add enrolled enroll registered register activated activate created",
    "setup configured set",
)
_MFA_DISABLE: Final = _words(
    "disabled disable removed remove deleted delete unenrolled unenroll deactivated deactivate",
    "reset revoked unregistered",
)
_CHANGED: Final = _words("updated update changed change modified edited rotated regenerated")
_PASSWORD_CHANGE: Final = _words("changed change updated update set rotated modified edited")
_PASSWORD_CHECK: Final = _words(
    "verified verify checked check accepted incorrect invalid mismatch wrong"
)

#: Target types that are accounts (the ``user`` of Authentication and Account Change).
_USER_LIKE: Final = _words("user admin account service_account member person employee")
#: Target types that are roles (the ``policies`` of Attach/Detach Policy).
_ROLE_LIKE: Final = _words("role permission policy privilege")
#: Target types that are the service a user authenticates to.
_SERVICE_LIKE: Final = _words("service app application client api integration oauth_client")

_SPLIT: Final = re.compile(r"[_-]+")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MS: Final = timedelta(milliseconds=1)
_INT32_MAX: Final = 2**31 - 1
#: A placeholder endpoint for API Activity events without ``context.ip`` (OCSF requires
#: ``src_endpoint`` in that class, and an endpoint needs at least one identifying field).
_UNKNOWN_ENDPOINT: Final[dict[str, str]] = {"name": "unknown"}


@dataclass(frozen=True, slots=True)
class Classification:
    """The OCSF class and activity of one action, and the class-specific facts its words tell.

    ``subject`` says how Account Change picks its ``user``: "role" (targets of a role type
    become ``policies``), "account" (any target may be the account) or "credential"
    (password/MFA: a user-like target, else the actor). ``is_mfa``, ``auth_protocol`` and
    ``auth_factor`` are for Authentication only.
    """

    class_uid: int
    activity_id: int
    subject: str = ""
    is_mfa: bool = False
    auth_protocol: tuple[int, str] | None = None
    auth_factor: tuple[int, str] | None = None


def _action_words(segment: str) -> list[str]:
    """The words of one dotted segment, with two-word phrases (``logged_in``) joined."""
    raw = [w for w in _SPLIT.split(segment) if w]
    out: list[str] = []
    i = 0
    while i < len(raw):
        pair = _PAIRS.get((raw[i], raw[i + 1])) if i + 1 < len(raw) else None
        if pair is not None:
            out.append(pair)
            i += 2
        else:
            out.append(raw[i])
            i += 1
    return out


@lru_cache(maxsize=16384)
def classify(action: str, category: str) -> Classification:
    """The OCSF class and activity for an action and category (docs/ocsf.md, "Classes").

    The action's last segment is the verb (outcome words such as ``failed`` dropped) and the
    segment before it the object; the rules run in this order: logon/logoff/authenticate
    verbs, impersonation, sessions, MFA, passwords, roles, accounts, other authentication
    words, then API Activity (category ``access`` or an ``http``/``api``... namespace), then
    Entity Management.
    """
    segments = action.split(".")
    obj = _action_words(segments[-2]) if len(segments) > 1 else []
    tail = obj + _action_words(segments[-1])
    while len(tail) > 1 and tail[-1] in _OUTCOME_WORDS:
        tail.pop()
    if not tail:  # a segment made only of separators, e.g. "x.__"
        tail = [segments[-1]]
    verb = tail[-1]
    every = set(tail)
    account_obj = bool(obj) and obj[-1] in _ACCOUNT and _GROUPISH.isdisjoint(obj)
    # The object's words tell the subject; the verb's own qualifiers ("password" in
    # user.password_changed) count too when the object is an account, a session or auth.
    subject = set(tail[: len(obj)]) if len(tail) > len(obj) else set(tail[:-1])
    if account_obj or not _AUTH_WORDS.isdisjoint(obj) or not _SESSION.isdisjoint(obj):
        subject |= set(tail[:-1])

    def auth(activity: int, *, mfa: bool = False) -> Classification:
        protocol = next((_AUTH_PROTOCOLS[w] for w in tail if w in _AUTH_PROTOCOLS), None)
        factor = next((_AUTH_FACTORS[w] for w in tail if w in _AUTH_FACTORS), None)
        return Classification(
            AUTHENTICATION,
            activity,
            is_mfa=mfa or not _MFA.isdisjoint(every),
            auth_protocol=protocol,
            auth_factor=factor,
        )

    if verb in _LOGON:
        return auth(1)
    if verb in _LOGOFF:
        return auth(2)
    if verb in _AUTH_WORDS:
        return auth(1)
    if verb == "switch_user" or any(w.startswith("impersonat") for w in tail):
        return auth(7)
    if not _SESSION.isdisjoint(subject):
        if verb in _SESSION_START:
            return auth(1)
        return auth(2 if verb in _SESSION_END else OTHER)
    if not _MFA.isdisjoint(subject) or verb in _MFA:
        if verb in _MFA_ENABLE:
            return Classification(ACCOUNT_CHANGE, 10, "credential")
        if verb in _MFA_DISABLE:
            return Classification(ACCOUNT_CHANGE, 11, "credential")
        if verb in _CHANGED:
            return Classification(ACCOUNT_CHANGE, OTHER, "credential")
        if verb not in _READ:
            return auth(OTHER, mfa=True)
    elif not _PASSWORD.isdisjoint(subject) or verb in _PASSWORD:
        if verb in _PASSWORD_CHANGE:
            return Classification(ACCOUNT_CHANGE, 3, "credential")
        if verb == "reset":
            return Classification(ACCOUNT_CHANGE, 4, "credential")
        if "reset" not in every and (verb in _PASSWORD_CHECK or verb in _PASSWORD):
            return auth(OTHER)
        if verb not in _READ:
            return Classification(ACCOUNT_CHANGE, OTHER, "credential")
    elif not _ROLE.isdisjoint(subject):
        if verb in _ROLE_ATTACH:
            return Classification(ACCOUNT_CHANGE, 7, "role")
        if verb in _ROLE_DETACH:
            return Classification(ACCOUNT_CHANGE, 8, "role")
        if verb in _CREATE:
            return Classification(ACCOUNT_CHANGE, 1, "role")
        if verb in _DELETE:
            return Classification(ACCOUNT_CHANGE, 6, "role")
        if verb not in _READ:
            return Classification(ACCOUNT_CHANGE, OTHER, "role")
    elif account_obj and verb not in _READ:
        return Classification(ACCOUNT_CHANGE, _ACCOUNT_VERBS.get(verb, OTHER), "account")
    if not _AUTH_WORDS.isdisjoint(subject) and verb not in _ENTITY_VERBS:
        return auth(OTHER)
    if category == "access" or segments[0] in _API_NAMESPACES:
        return Classification(API_ACTIVITY, _API_VERBS.get(verb, OTHER))
    return Classification(ENTITY_MANAGEMENT, _ENTITY_VERBS.get(verb, OTHER))


def _header(class_uid: int, activity_id: int) -> dict[str, Any]:
    class_name, category_uid, category_name = CLASSES[class_uid]
    activity_name = ACTIVITY_NAMES[class_uid][activity_id]
    return {
        "class_uid": class_uid,
        "class_name": class_name,
        "category_uid": category_uid,
        "category_name": category_name,
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": class_uid * 100 + activity_id,
        "type_name": f"{class_name}: {activity_name}",
    }


#: (class_uid, activity_id) -> the classification attributes every such event starts with.
_HEADERS: Final[dict[tuple[int, int], dict[str, Any]]] = {
    (c, a): _header(c, a) for c, names in ACTIVITY_NAMES.items() for a in names
}


# -- field helpers ----------------------------------------------------------------------------


def _ms(timestamp: str) -> int:
    """Milliseconds since the epoch of an RFC 3339 timestamp (floor)."""
    try:
        return (datetime.fromisoformat(timestamp) - _EPOCH) // _MS
    except (ValueError, TypeError):
        return parse_timestamp(timestamp) // 1000


def _user(party: dict[str, Any]) -> dict[str, Any]:
    """An OCSF ``user`` for an auditkeep actor or target ({id, type, name?})."""
    ptype = party.get("type") or "user"
    type_id, type_caption = _USER_TYPES.get(ptype, (OTHER, ptype))
    user: dict[str, Any] = {"uid": party["id"], "type_id": type_id, "type": type_caption}
    name = party.get("name")
    if name is not None:
        user["name"] = name
    return user


def _entity(target: dict[str, Any]) -> dict[str, Any]:
    """An OCSF ``managed_entity`` for an auditkeep target."""
    ttype = target["type"]
    type_id, type_caption = _ENTITY_TYPES.get(ttype, (OTHER, ttype))
    entity: dict[str, Any] = {"uid": target["id"], "type_id": type_id, "type": type_caption}
    name = target.get("name")
    if name is not None:
        entity["name"] = name
    return entity


def _uid_name(target: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """``{uid, name?}`` plus ``extra``: the shape of OCSF service, policy and resource."""
    out: dict[str, Any] = {"uid": target["id"]}
    name = target.get("name")
    if name is not None:
        out["name"] = name
    out.update(extra)
    return out


def _first(targets: list[dict[str, Any]], types: frozenset[str]) -> int:
    """Index of the first target whose type is in ``types``, or -1."""
    for i, t in enumerate(targets):
        if t.get("type") in types:
            return i
    return -1


def _int(value: Any) -> int | None:
    """``value`` when it is a JSON integer (not a boolean), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _message(event: dict[str, Any], actor: dict[str, Any], targets: list[dict[str, Any]]) -> str:
    text = f"{event['action']} by {actor.get('type') or 'user'} {actor.get('id')}"
    if targets:
        first = targets[0]
        text += f" on {first.get('type')} {first.get('id')}"
        if len(targets) > 1:
            text += f" and {len(targets) - 1} more"
    if event.get("outcome") == "failure":
        reason = event.get("reason")
        text += f": failure ({reason})" if reason else ": failure"
    return text


def _api(out: dict[str, Any], event: dict[str, Any], meta: dict[str, Any]) -> None:
    """API Activity: ``api``, ``resources`` and the HTTP details of the SDK middleware's
    metadata (method, path, route, status, latency_ms, request_bytes, response_bytes)."""
    context = event.get("context") or {}
    method = meta.get("method")
    method = method.upper() if isinstance(method, str) else None
    if method not in _HTTP_METHOD_ACTIVITY:
        method = None
    path = meta.get("path")
    path = path if isinstance(path, str) and path else None
    route = meta.get("route")
    route = route if isinstance(route, str) and route else None
    status = _int(meta.get("status"))
    if status is not None and not 100 <= status <= 599:
        status = None

    if method is not None:
        activity = _HTTP_METHOD_ACTIVITY[method]
        if activity != out["activity_id"]:
            out.update(_HEADERS[(API_ACTIVITY, activity)])
            if activity == OTHER:
                out["activity_name"] = event["action"]
    where = route or path
    api: dict[str, Any] = {
        "operation": f"{method} {where}" if method and where else event["action"]
    }
    request_id = context.get("request_id")
    if request_id is not None:
        api["request"] = {"uid": request_id}
    if status is not None:
        api["response"] = {"code": status}
        out["status_code"] = str(status)
    out["api"] = api

    http = out.get("http_request") or {}
    if method is not None:
        http["http_method"] = method
    if path is not None:
        http["url"] = {"path": path}
    request_bytes = _int(meta.get("request_bytes"))
    if request_bytes is not None and request_bytes >= 0:
        http["body_length"] = request_bytes
    if http:
        out["http_request"] = http
    if status is not None:
        response: dict[str, Any] = {"code": status}
        response_bytes = _int(meta.get("response_bytes"))
        if response_bytes is not None and response_bytes >= 0:
            response["body_length"] = response_bytes
        latency = meta.get("latency_ms")
        if isinstance(latency, int | float) and not isinstance(latency, bool) and latency >= 0:
            response["latency"] = round(latency)
        out["http_response"] = response
    if "src_endpoint" not in out:
        out["src_endpoint"] = dict(_UNKNOWN_ENDPOINT)


def to_ocsf(event: dict[str, Any]) -> dict[str, Any]:
    """Map one auditkeep event (as the API serves it) to one OCSF 1.8.0 event object.

    The input is trusted to be a valid event in normal form (the store only holds those);
    ``tenant``, ``received_at``, ``seq`` and ``hash`` are used when present. The result holds
    no ``None`` values and is valid for its class under the OCSF schema (no profiles).
    """
    action: str = event["action"]
    category: str = event.get("category") or "audit"
    outcome: str = event.get("outcome") or "success"
    actor: dict[str, Any] = event["actor"]
    targets: list[dict[str, Any]] = event.get("targets") or []
    context: dict[str, Any] = event.get("context") or {}
    meta: dict[str, Any] = event.get("metadata") or {}

    c = classify(action, category)
    out = dict(_HEADERS[(c.class_uid, c.activity_id)])
    if c.activity_id == OTHER:
        out["activity_name"] = action

    status_id, status = _STATUS.get(outcome, (2, "Failure"))
    severity_id = 1 if status_id == 1 else 3 if category in _SERIOUS_CATEGORIES else 2
    out["severity_id"] = severity_id
    out["severity"] = _SEVERITY[severity_id]
    out["status_id"] = status_id
    out["status"] = status
    reason = event.get("reason")
    if reason is not None:
        out["status_detail"] = reason
    out["time"] = _ms(event["occurred_at"])
    out["message"] = _message(event, actor, targets)

    metadata: dict[str, Any] = {
        "version": OCSF_VERSION,
        "product": PRODUCT,
        "uid": event["id"],
        "event_code": action,
        "original_time": event["occurred_at"],
        "labels": [category],
    }
    received_at = event.get("received_at")
    if received_at is not None:
        metadata["logged_time"] = _ms(received_at)
    tenant = event.get("tenant")
    if tenant is not None:
        metadata["tenant_uid"] = tenant
    seq = event.get("seq")
    if seq is not None and 0 <= seq <= _INT32_MAX:
        metadata["sequence"] = seq
    request_id = context.get("request_id")
    if request_id is not None:
        metadata["correlation_uid"] = request_id
    out["metadata"] = metadata

    ocsf_actor: dict[str, Any] = {"user": _user(actor)}
    session_id = context.get("session_id")
    if session_id is not None:
        ocsf_actor["session"] = {"uid": session_id}
    out["actor"] = ocsf_actor
    ip = context.get("ip")
    if ip is not None:
        out["src_endpoint"] = {"ip": ip}
    user_agent = context.get("user_agent")
    if user_agent is not None:
        out["http_request"] = {"user_agent": user_agent}

    rest = list(targets)  # the targets no OCSF attribute takes; they go to unmapped
    if c.class_uid == AUTHENTICATION:
        i = _first(rest, _USER_LIKE)
        out["user"] = _user(rest.pop(i)) if i >= 0 else ocsf_actor["user"]
        i = _first(rest, _SERVICE_LIKE)
        out["service"] = _uid_name(rest.pop(i)) if i >= 0 else {"name": tenant or "unknown"}
        if session_id is not None:
            out["session"] = {"uid": session_id}
        if c.is_mfa:
            out["is_mfa"] = True
        if c.auth_protocol is not None:
            out["auth_protocol_id"], out["auth_protocol"] = c.auth_protocol
        if c.auth_factor is not None:
            factor_id, factor = c.auth_factor
            out["auth_factors"] = [{"factor_type_id": factor_id, "factor_type": factor}]
    elif c.class_uid == ACCOUNT_CHANGE:
        i = _first(rest, _USER_LIKE)
        if i < 0 and rest and c.subject in ("account", "role"):
            i = 0
        out["user"] = _user(rest.pop(i)) if i >= 0 else ocsf_actor["user"]
        if c.subject == "role":
            roles = [t for t in rest if t.get("type") in _ROLE_LIKE]
            if roles:
                out["policies"] = [_uid_name(t, type=t["type"]) for t in roles]
                rest = [t for t in rest if t.get("type") not in _ROLE_LIKE]
    elif c.class_uid == API_ACTIVITY:
        if rest:
            out["resources"] = [
                _uid_name(t, type=t["type"], role_id=1, role="Target") for t in rest
            ]
            rest = []
        _api(out, event, meta)
    else:
        if rest:
            out["entity"] = _entity(rest.pop(0))
        else:  # no target: the entity is the kind of thing the action names
            kind = action.split(".")[-2]
            type_id, type_caption = _ENTITY_TYPES.get(kind, (OTHER, kind))
            out["entity"] = {"name": kind, "type_id": type_id, "type": type_caption}

    unmapped: dict[str, Any] = {}
    if seq is not None:
        unmapped["seq"] = seq
    leaf_hash = event.get("hash")
    if leaf_hash is not None:
        unmapped["hash"] = leaf_hash
    if meta:
        unmapped["metadata"] = meta
    if rest:
        unmapped["targets"] = rest
    location = context.get("location")
    if location is not None:
        unmapped["context"] = {"location": location}
    if unmapped:
        out["unmapped"] = unmapped
    return out
