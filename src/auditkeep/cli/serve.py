"""``auditkeep serve``: the HTTP server, and the operator key of a new data directory."""

from __future__ import annotations

import ipaddress
import logging
import os
import shutil
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from auditkeep.core import Core
from auditkeep.settings import SETTINGS, Config

#: where `serve` puts a new operator key when stderr is not a terminal (in DATA_DIR/keys/)
OPERATOR_KEY_FILE = "operator-key.txt"


def _serve_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    for setting in reversed(SETTINGS):
        flag = "--" + setting.name.replace("_", "-")
        kind: Any = click.Choice(setting.choices) if setting.choices else setting.type
        if setting.type is Path:
            kind = click.Path(file_okay=False, path_type=Path)
        fn = click.option(
            flag,
            setting.name,
            type=kind,
            default=None,
            help=f"{setting.help} "
            f"[default: {setting.default}; env AUDITKEEP_{setting.name.upper()}]",
        )(fn)
    return fn


@click.command()
@_serve_options
def serve(**overrides: Any) -> None:
    """Run the HTTP server (creates the data directory and an operator key on first start).

    The new operator key is printed once when stderr is a terminal; otherwise it is written
    to DATA_DIR/keys/operator-key.txt (mode 0600) and only that path is logged.
    """
    import uvicorn

    from auditkeep import logs
    from auditkeep.api.app import create_app
    from auditkeep.api.protocol import connection_limit, guarded_protocol

    config = Config.load(overrides)
    logs.configure(config.log_level)
    if not config.metrics_token and not _loopback(config.host):
        logging.getLogger("auditkeep.serve").warning(
            "/metrics is open to anyone who can reach %s:%s, and its delivery series name "
            "tenants and destinations: set metrics_token (docs/operations.md)",
            config.host,
            config.port,
        )
    core = Core(config)
    sock = socket.socket(socket.AF_INET6 if ":" in config.host else socket.AF_INET)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((config.host, config.port))
    except (OSError, OverflowError) as exc:
        sock.close()
        core.close()
        raise click.ClickException(f"cannot listen on {config.host}:{config.port}: {exc}") from None
    port = sock.getsockname()[1]
    url = f"http://{config.host if ':' not in config.host else f'[{config.host}]'}:{port}"
    operator_key = core.ensure_operator_key()
    data_dir = config.data_dir.resolve()
    where = f"data: {data_dir}"
    if config.database_url:
        where = f"store: PostgreSQL at {getattr(core.store, 'where', '?')}; keys: {data_dir}/keys"
    click.echo(f"auditkeep {_version()} listening on {url}  ({where})", err=True)
    cmd = command_name()
    if operator_key and sys.stderr.isatty():
        click.echo(
            "\nNew data directory: created an operator key. It is shown ONCE; only its hash is "
            f"stored.\n\n    {operator_key}\n\n"
            "Create a tenant and an ingest key with it:\n"
            f"    export AUDITKEEP_URL={url} AUDITKEEP_KEY=<the key above>\n"
            f"    {cmd} tenants create acme\n"
            f"    {cmd} keys create --tenant acme --scopes events:write,events:read\n"
            "then use that tenant key (export AUDITKEEP_KEY=<it>) to send and read events;\n"
            f"or, without the server: {cmd} keys create --data-dir {data_dir} --tenant acme "
            "--scopes events:write,events:read\n",
            err=True,
        )
    elif operator_key:
        # stderr is a log collector, not a person: the key goes to a file only its owner reads
        key_file = _write_operator_key(data_dir, operator_key)
        click.echo(
            "New data directory: created an operator key. It is not shown here (stderr is not "
            f"a terminal): it is in {key_file} (mode 0600), the only copy; only its hash is "
            "stored. Move it to your secret store and delete the file. Then:\n"
            f'    export AUDITKEEP_URL={url} AUDITKEEP_KEY="$(cat {key_file})"\n'
            f"    {cmd} tenants create acme\n",
            err=True,
        )
    else:
        click.echo(
            f"Get a key: {cmd} keys create --tenant NAME --scopes events:write,events:read "
            f"--data-dir {data_dir}",
            err=True,
        )
    app = create_app(core)
    protocol = guarded_protocol(
        header_timeout=config.header_timeout,
        body_timeout=config.body_timeout,
        max_connections=connection_limit(config.max_connections),
        refused=lambda reason: core.metrics.connections_refused.labels(reason).inc(),
    )
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            log_config=None,
            access_log=False,
            loop="uvloop",
            http=protocol,
            timeout_graceful_shutdown=10,
            backlog=2048,
        )
    )
    server.run(sockets=[sock])


def command_name() -> str:
    """How to run this CLI again from a shell: ``auditkeep`` when that is what the PATH finds,
    else its full path (e.g. ``/srv/auditkeep/.venv/bin/auditkeep`` before ``source
    .venv/bin/activate``)."""
    script = Path(sys.executable).parent / "auditkeep"
    if Path(sys.argv[0]).name == "auditkeep":
        script = Path(sys.argv[0])
    found = shutil.which("auditkeep")
    if found and script.exists() and Path(found).resolve() == script.resolve():
        return "auditkeep"
    if script.exists():
        return str(script.absolute())
    return f"{sys.executable} -m auditkeep.cli"


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _write_operator_key(data_dir: Path, key: str) -> Path:
    """Write the new operator key to ``DATA_DIR/keys/operator-key.txt``, readable by the
    server's user only (made 0600 before the key is written; replaced atomically)."""
    folder = data_dir / "keys"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / OPERATOR_KEY_FILE
    tmp = folder / f".{OPERATOR_KEY_FILE}.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)  # (the umask cannot widen it, but an old file could be wider)
        os.write(fd, f"{key}\n".encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return path


def _version() -> str:
    from auditkeep import __version__

    return __version__
