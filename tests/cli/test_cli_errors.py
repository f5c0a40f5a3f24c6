"""Every CLI command turns every error into one line on standard error and a non-zero exit.

Each command group is run with bad input on a data directory and against a real server; no
run may print a traceback, and the message must name the problem.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from auditkeep.cli import main
from tests.conftest import LiveServer, cli, create_tenant_key, free_port, start_live_server


def _assert_one_line_error(args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, args)
    output = result.output  # standard output and standard error, interleaved
    assert result.exit_code != 0, output
    # an unhandled exception would be here instead of a SystemExit from click
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert "Traceback" not in output, output
    assert message in output, output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1, result.stderr


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """`serve` and `witness` configure the root logger (a handler on the runner's stderr);
    put back what pytest had, so later tests do not log into a closed stream."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    quiet = {name: logging.getLogger(name).level for name in ("httpx", "httpcore")}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, was in quiet.items():
        logging.getLogger(name).setLevel(was)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("cli-errors") / "data"
    cli("tenants", "create", "acme", data_dir=data)
    return data


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, str]]:
    live = start_live_server(tmp_path_factory.mktemp("cli-errors-live"))
    try:
        admin = create_tenant_key(live.data_dir, "acme", "admin,events:read")
        yield live, admin
    finally:
        live.kill()


DATA_DIR_CASES = [
    (["keys", "create", "--tenant", "acme", "--scopes", "events:wrte"], "unknown scope"),
    (["keys", "create", "--tenant", "acme", "--scopes", "events:read", "--expires", "soon"],
     "'soon' is not an RFC 3339 timestamp"),
    (["keys", "list", "--tenant", "nope"], "no tenant named 'nope'"),
    (["keys", "revoke", "ak_aaaaaaaaaaaa", "--tenant", "acme"], "has no key"),
    (["tenants", "create", "Bad Name"], "not a valid tenant name"),
    (["export", "--tenant", "acme", "-o", "/nonexistent/dir/x.csv"],
     "/nonexistent/dir/x.csv: No such file or directory"),
    (["export", "--tenant", "acme", "--since", "bogus"], "'bogus' is not an RFC 3339"),
    (["events", "search", "--tenant", "nope"], "no tenant named 'nope'"),
    (["events", "tail", "--tenant", "nope"], "no tenant named 'nope'"),
    (["destinations", "show", "d_nope", "--tenant", "acme"], "has no destination 'd_nope'"),
    (["destinations", "create", "--tenant", "acme", "--name", "w", "--kind", "webhook"],
     "config.url: required"),
    (["destinations", "create", "--tenant", "acme", "--name", "w", "--kind", "webhook",
      "--url", "http://127.0.0.1:9/hook"], "AUDITKEEP_DELIVERY_ALLOW_NETWORKS"),
    (["destinations", "pause", "d_nope", "--tenant", "acme"], "has no destination"),
    (["destinations", "delete", "d_nope", "--tenant", "acme"], "has no destination"),
    (["verify", "--tenant", "nope"], "no tenant named 'nope'"),
    (["verify", "--log-key", "garbage"], "verifier key must have the form"),
    (["verify", "/nonexistent/bundle.ndjson"], "no such file"),
    (["export-bundle", "--tenant", "acme", "-o", "/nonexistent/dir/b.ndjson"],
     "No such file or directory"),
    (["export-bundle", "--tenant", "acme", "--from-seq", "5", "-o", "/tmp/never.ndjson"],
     "is empty"),
    (["log", "checkpoint", "--tenant", "nope"], "no tenant named 'nope'"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "message"), DATA_DIR_CASES, ids=lambda v: " ".join(v)[:60])
def test_data_directory_mode(data_dir: Path, args: list[str], message: str) -> None:
    if args[0] == "verify" and args[1].startswith("/"):
        _assert_one_line_error(args, message)
    else:
        _assert_one_line_error([*args, "--data-dir", str(data_dir)], message)


def test_data_directory_that_cannot_be_made(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    _assert_one_line_error(["migrate", "--data-dir", str(blocker / "data")], "data directory")
    _assert_one_line_error(["log", "key", "--data-dir", str(blocker / "data")], "data directory")


def test_serve_with_bad_settings(tmp_path: Path) -> None:
    data = str(tmp_path / "d")
    _assert_one_line_error(["serve", "--data-dir", data, "--port", "99999"], "cannot listen")
    _assert_one_line_error(
        ["serve", "--data-dir", data, "--checkpoint-interval", "-5"], "must not be negative"
    )


def test_http_mode(server: tuple[LiveServer, str], tmp_path: Path) -> None:
    live, admin = server
    writer = ["--server", live.url, "--key", live.write_key]
    as_admin = ["--server", live.url, "--key", admin]
    unknown_key = "ak_aaaaaaaaaaaa_" + "x" * 43
    cases = [
        (["tenants", "create", "globex", *writer], "403"),
        (["tenants", "list", *as_admin], "403"),
        (["keys", "create", "--tenant", "acme", "--scopes", "events:wrte", *as_admin],
         "unknown scope"),
        (["keys", "list", "--tenant", "acme", *writer], "may not manage it"),
        (["keys", "revoke", "ak_aaaaaaaaaaaa", "--tenant", "acme", *as_admin], "has no key"),
        (["destinations", "show", "d_nope", "--tenant", "acme", *as_admin], "has no destination"),
        (["destinations", "create", "--tenant", "acme", "--name", "w", "--kind", "webhook",
          "--url", "http://127.0.0.1:9/hook", *as_admin], "--delivery-allow-networks"),
        (["export", "-o", str(tmp_path / "missing" / "x.csv"), *as_admin],
         "No such file or directory"),
        (["export", "--since", "bogus", *as_admin], "RFC 3339"),
        (["events", "search", "--since", "bogus", *as_admin], "RFC 3339"),
        (["events", "search", "--server", live.url, "--key", unknown_key], "401"),
        (["verify", "--log-key", "garbage", *as_admin], "verifier key must have the form"),
        (["export-bundle", "--from-seq", "5", "-o", str(tmp_path / "b.ndjson"), *as_admin],
         "is empty"),
        (["log", "checkpoint", "--server", live.url, "--key", unknown_key], "401"),
        (["tenants", "list", "--server", f"http://127.0.0.1:{free_port()}", "--key", "k"],
         "cannot reach"),
    ]  # fmt: skip
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    cases.append(
        (["witness", "--state", str(blocker / "state"), "--once", *writer], "Not a directory")
    )
    for args, message in cases:
        _assert_one_line_error(args, message)


def test_the_reported_commands_print_no_traceback(data_dir: Path) -> None:
    """The two runs of the issue, as a user runs them (a separate process, real stderr)."""
    for args in (
        ["keys", "create", "--tenant", "acme", "--scopes", "events:wrte"],
        ["export", "--tenant", "acme", "-o", "/nonexistent/dir/x.csv"],
    ):
        result = cli(*args, data_dir=data_dir, check=False)
        assert result.returncode == 1
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert result.stderr.startswith("Error: ")


def test_loopback_webhook_problem_names_the_setting(server: tuple[LiveServer, str]) -> None:
    live, admin = server
    r = httpx.post(
        f"{live.url}/v1/tenants/acme/destinations",
        json={"name": "local", "kind": "webhook", "config": {"url": "http://127.0.0.1:9/h"}},
        headers={"Authorization": f"Bearer {admin}"},
    )
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    problem = json.loads(r.text)
    assert problem["type"].endswith("/invalid-destination")
    assert problem["title"] == "The destination's configuration is invalid"
    for name in (
        "delivery_allow_networks",
        "--delivery-allow-networks 127.0.0.1/32",
        "AUDITKEEP_DELIVERY_ALLOW_NETWORKS=127.0.0.1/32",
    ):
        assert name in problem["detail"], problem["detail"]
    assert problem["errors"][0]["path"] == "config.url"


def test_destinations_show_prints_configuration_full_error_and_next_attempt(
    tmp_path: Path,
) -> None:
    live = start_live_server(tmp_path, delivery_allow_networks="127.0.0.0/8")
    try:
        admin = create_tenant_key(live.data_dir, "acme", "admin,events:read")
        target = ["--tenant", "acme", "--server", live.url, "--key", admin]
        url = f"http://127.0.0.1:{free_port()}/audit-hook"  # nothing listens: every try fails
        created = CliRunner().invoke(
            main,
            ["destinations", "create", "--name", "down", "--kind", "webhook", "--url", url,
             "--json", *target],
        )  # fmt: skip
        assert created.exit_code == 0, created.output
        dest_id = json.loads(created.stdout)["id"]
        httpx.post(
            live.url + "/v1/events",
            json={"events": [{"id": "e1", "action": "user.login", "actor": {"id": "u1"},
                              "occurred_at": "2026-11-23T18:20:19Z"}]},
            headers={"Authorization": f"Bearer {live.write_key}"},
        ).raise_for_status()  # fmt: skip
        api = f"{live.url}/v1/tenants/acme/destinations/{dest_id}"
        deadline = time.monotonic() + 20
        body: dict[str, object] = {}
        while time.monotonic() < deadline:
            body = httpx.get(api, headers={"Authorization": f"Bearer {admin}"}).json()
            if body["last_error"] and body["next_attempt_at"]:
                break
            time.sleep(0.1)
        error = str(body["last_error"])
        assert len(error) > 48, error  # longer than the list table's cell
        shown = CliRunner().invoke(main, ["destinations", "show", dest_id, *target])
        assert shown.exit_code == 0, shown.output
        lines = {
            line.split("  ", 1)[0]: line.split("  ", 1)[1].strip()
            for line in shown.stdout.splitlines()
            if "  " in line
        }
        assert lines["config.url"] == url
        assert lines["kind"] == "webhook" and lines["id"] == dest_id
        assert error in shown.stdout  # the whole last error, not cut
        assert lines["next attempt"].startswith(str(body["next_attempt_at"])[:16])
        assert "…" not in shown.stdout
    finally:
        live.kill()


def test_printed_commands_run_as_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first-start banner prints commands a user can paste: the full path of `auditkeep`
    unless the PATH finds that very script (e.g. after `source .venv/bin/activate`)."""
    import sys

    from auditkeep.cli.serve import command_name

    script = Path(sys.executable).parent / "auditkeep"
    assert script.exists()
    monkeypatch.setattr(sys, "argv", [str(script), "serve"])
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert command_name() == str(script.absolute())
    monkeypatch.setenv("PATH", f"{script.parent}:/usr/bin:/bin")
    assert command_name() == "auditkeep"


def test_the_debug_advice_works_as_given(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Errors say to set AUDITKEEP_DEBUG=1 for a traceback; with it set, commands still run
    (it, and the SDK's AUDITKEEP_* variables, are not server settings)."""
    for name, value in (
        ("AUDITKEEP_DEBUG", "1"),
        ("AUDITKEEP_API_KEY", "ak_x_y"),
        ("AUDITKEEP_ENDPOINTS", "http://127.0.0.1:9"),
        ("AUDITKEEP_OUTBOX", "/tmp/outbox.db"),
    ):
        monkeypatch.setenv(name, value)
    listed = cli("tenants", "list", "--json", data_dir=data_dir)
    assert "acme" in listed.stdout, listed.stderr
    failed = cli(
        "keys",
        "create",
        "--tenant",
        "acme",
        "--scopes",
        "events:wrte",
        data_dir=data_dir,
        check=False,
    )
    assert failed.returncode == 1 and "Traceback" in failed.stderr, failed.stderr
