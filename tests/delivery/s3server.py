"""A real S3-compatible server on loopback, for the s3 destination's tests: moto in server mode.

:func:`start_moto` runs ``python -m moto.server -H 127.0.0.1 -p <free port>`` as a subprocess,
waits until it answers, creates an IAM user with an access key allowed ``s3:*`` and then turns
moto's request authentication on (``POST /moto-api/reset-auth`` with ``0``: moto's
``INITIAL_NO_AUTH_ACTION_COUNT``, after which every request's SigV4 signature is recomputed
from the IAM user's secret and compared). Without that step moto accepts any signature. The
server is stopped by its pid. Objects are read back with boto3, an independent client.

PyPI packages (dev): ``moto[server]`` and ``boto3``.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

HAVE_MOTO = all(importlib.util.find_spec(name) for name in ("moto", "boto3", "flask_cors"))
if HAVE_MOTO:
    import boto3
    from botocore.config import Config as BotoConfig

requires_moto = pytest.mark.skipif(
    not HAVE_MOTO, reason="moto[server] and boto3 are not installed (pip install 'moto[server]')"
)

REGION = "us-east-1"
BOOTSTRAP_KEY = ("testing", "testing")  # any key works before authentication is on


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def boto_client(url: str, access_key_id: str, secret_access_key: str, service: str = "s3") -> Any:
    """A boto3 client for the server at ``url`` (path-style, no retries, no config files)."""
    return boto3.client(
        service,
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        config=BotoConfig(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1, "mode": "standard"},
            connect_timeout=5,
            read_timeout=10,
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


@dataclass
class MotoServer:
    port: int
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    access_key_id: str = ""
    secret_access_key: str = ""
    buckets: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        args = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        with open(self.log_path, "ab") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(args, stdout=log, stderr=log, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto exited: {self.log()}")
            try:
                if httpx.get(self.url + "/moto-api/data.json", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"moto did not answer within {timeout}s: {self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def setup_auth(self, user: str = "auditkeep") -> None:
        """An IAM user allowed s3:*, its access key, then authentication on."""
        iam = boto_client(self.url, *BOOTSTRAP_KEY, service="iam")
        iam.create_user(UserName=user)
        iam.put_user_policy(
            UserName=user,
            PolicyName="s3-all",
            PolicyDocument='{"Version": "2012-10-17", "Statement": [{"Effect": "Allow",'
            ' "Action": "s3:*", "Resource": "*"}]}',
        )
        key = iam.create_access_key(UserName=user)["AccessKey"]
        self.access_key_id, self.secret_access_key = key["AccessKeyId"], key["SecretAccessKey"]
        answer = httpx.post(self.url + "/moto-api/reset-auth", content=b"0", timeout=5)
        answer.raise_for_status()

    def client(self) -> Any:
        """boto3 S3 client with the IAM user's key (use after :meth:`setup_auth`)."""
        return boto_client(self.url, self.access_key_id, self.secret_access_key)

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)
        self.buckets.append(name)

    def stop(self) -> None:
        """SIGTERM by pid, then SIGKILL if it lingers."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


def start_moto(directory: Path, *, auth: bool = True) -> MotoServer:
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    server = MotoServer(port=port, log_path=directory / f"moto-{port}.log")
    server.start()
    try:
        if auth:
            server.setup_auth()
    except Exception:
        server.stop()
        raise
    return server


@pytest.fixture(scope="module")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """One moto server (authentication on) for a test module; tests use their own prefixes."""
    if not HAVE_MOTO:
        pytest.skip("moto[server] and boto3 are not installed")
    server = start_moto(tmp_path_factory.mktemp("moto"))
    try:
        yield server
    finally:
        server.stop()
