"""schemathesis against a real server over its own /openapi.json: every operation, a bounded
number of generated requests each (derandomized: the same requests on every run), and for
each answer: no 5xx, a documented status code and content type, and a body that conforms to
the documented schema where one is declared."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import LiveServer, create_tenant_key, event, free_port

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
REFUSED = "http://127.0.0.1:9/hook"
EXAMPLES = 20  # per operation and mode; 31 operations: about 30 s for both modes


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, str]]:
    """One server for the module, with events, a checkpoint and a destination to find, and a
    key that holds every tenant scope (events:read, events:write, admin)."""
    data_dir: Path = tmp_path_factory.mktemp("fuzz") / "data"
    key = create_tenant_key(data_dir, "acme", "events:write,events:read,admin")
    # long-polls end at once, so a generated ?wait= cannot hold the run
    server = LiveServer(
        data_dir=data_dir,
        port=free_port(),
        write_key=key,
        settings={"feed_max_wait": "0.2", "delivery_allow_networks": "127.0.0.0/8"},
    )
    server.start()
    try:
        with httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        ) as client:
            r = client.post("/v1/events", json={"events": [event(i) for i in range(5)]})
            assert r.status_code == 200, r.text
            assert client.post("/v1/log/checkpoints").status_code == 201
            r = client.post(
                "/v1/tenants/acme/destinations",
                # nothing listens on the discard port: delivery fails and retries, harmlessly
                json={"name": "fuzz", "kind": "webhook", "config": {"url": REFUSED}},
            )
            assert r.status_code == 201, r.text
        yield server, r.json()["id"]
    finally:
        server.kill()


def _known(case: Any, dest_id: str) -> None:
    """Point about half the generated path parameters at things that exist (the tenant, an
    event, a signed tree size, the destination), so that those answers are checked too, not
    only the 404s of random names. Never the key id: a revoked key would end the run."""
    known = {"tenant": "acme", "event_id": "evt-1", "size": 5, "dest_id": dest_id}
    if case.method == "DELETE":
        known.pop("dest_id")
    for name, value in (case.path_parameters or {}).items():
        if name in known and len(str(value)) % 2 == 0:  # deterministic, as the run is
            case.path_parameters[name] = known[name]


def _fuzz(
    operation: Any, mode: GenerationMode, key: str, dest_id: str, seen: set[int]
) -> Callable[[], None]:
    """A hypothesis test of ``operation``: each generated request is sent with ``key`` and
    its answer checked; the status codes seen go into ``seen``."""

    @given(case=operation.as_strategy(mode))
    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        _known(case, dest_id)
        response = case.call_and_validate(
            headers={"Authorization": f"Bearer {key}"}, checks=CHECKS, timeout=30
        )
        seen.add(response.status_code)

    return run


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_answers_as_documented(
    fuzz_server: tuple[LiveServer, str], mode: GenerationMode
) -> None:
    """Positive: requests the document allows. Negative: requests it forbids (wrong types,
    missing fields, out-of-range numbers), which must be refused with a documented 4xx."""
    server, dest_id = fuzz_server
    schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
    operator = (server.data_dir / "keys" / "operator-key.txt").read_text().strip()
    failures: list[str] = []
    answered: dict[str, set[int]] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        # tenants are managed with the operator key; everything else as the tenant's own key
        key = operator if operation.path.startswith("/v1/tenants") else server.write_key
        run = _fuzz(operation, mode, key, dest_id, answered.setdefault(operation.label, set()))
        try:
            run()
        except Unsatisfiable:
            # negative mode and an operation that takes no input: nothing can be wrong in it
            assert mode is GenerationMode.NEGATIVE, operation.label
        except Exception as exc:  # every operation is tried; all failures are reported
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
    if mode is GenerationMode.NEGATIVE:
        return
    # every route was exercised, and the run reached past the 4xx of each kind of resource
    assert len(answered) >= 30, sorted(answered)
    for label in (
        "GET /v1/events",
        "GET /v1/events/{event_id}",
        "GET /v1/log/checkpoints/{size}",
        "POST /v1/tenants",
        "POST /v1/tenants/{tenant}/keys",
        "GET /v1/tenants/{tenant}/destinations/{dest_id}",
    ):
        assert any(200 <= code < 300 for code in answered[label]), (label, answered[label])
