"""A real rsyslogd on loopback, for the syslog destination's tests.

Each :class:`Rsyslog` runs its own ``rsyslogd -n`` with a generated configuration (no system
configuration, no /dev/log, its own work directory) that listens with imtcp on 127.0.0.1,
optionally with TLS (the gtls or ossl network stream driver), and writes every message to
``raw.log`` (``%rawmsg%``: the message as received, framing removed) and the fields rsyslog's
own RFC 5424 parser found to ``fields.log``. It is stopped by its pid.

Debian packages: ``rsyslog`` and, for TLS, ``rsyslog-gnutls`` (or ``rsyslog-openssl``).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

RSYSLOGD = shutil.which("rsyslogd") or next(
    (p for p in ("/usr/sbin/rsyslogd", "/sbin/rsyslogd") if os.access(p, os.X_OK)), None
)
_MODULE_DIRS = ("/usr/lib/x86_64-linux-gnu/rsyslog", "/usr/lib/aarch64-linux-gnu/rsyslog")


def _tls_driver() -> str | None:
    dirs = [Path(d) for d in _MODULE_DIRS] + sorted(Path("/usr/lib").glob("*/rsyslog"))
    dirs += [Path("/usr/lib/rsyslog"), Path("/usr/lib64/rsyslog")]
    for driver in ("gtls", "ossl"):
        if any((d / f"lmnsd_{driver}.so").exists() for d in dirs):
            return driver
    return None


TLS_DRIVER = _tls_driver() if RSYSLOGD else None

requires_rsyslog = pytest.mark.skipif(
    RSYSLOGD is None, reason="rsyslogd is not installed (Debian: apt-get install rsyslog)"
)
requires_rsyslog_tls = pytest.mark.skipif(
    RSYSLOGD is None or TLS_DRIVER is None,
    reason="rsyslogd or its TLS driver is not installed "
    "(Debian: apt-get install rsyslog rsyslog-gnutls)",
)

RAW_TEMPLATE = "%rawmsg%\\n"
# rsyslog's own reading of the RFC 5424 header, tab separated
FIELDS_TEMPLATE = "%pri%\\t%hostname%\\t%app-name%\\t%procid%\\t%msgid%\\t%structured-data%\\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class TlsFiles:
    ca_cert: Path
    server_cert: Path
    server_key: Path


def make_tls_files(
    directory: Path, *, dns_name: str = "localhost", ip: str = "127.0.0.1", ca_name: str = "ca"
) -> TlsFiles:
    """A fresh CA and a server certificate it signs, for ``dns_name`` and ``ip``."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"auditkeep test {ca_name}")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_subject)
        .issuer_name(ca_subject)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_name)]))
        .issuer_name(ca_subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(dns_name), x509.IPAddress(ipaddress.ip_address(ip))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = TlsFiles(
        ca_cert=directory / f"{ca_name}.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server-key.pem",
    )
    files.ca_cert.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.server_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.server_key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    files.server_key.chmod(0o600)
    return files


def _listening(port: int) -> bool:
    """Whether something listens on 127.0.0.1:``port`` (Linux /proc; no probe connection,
    which rsyslog would log as a broken session, or a failed handshake with TLS)."""
    wanted = f"0100007F:{port:04X}"
    try:
        lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            return False
    return any(
        fields[1] == wanted and fields[3] == "0A" for fields in (line.split() for line in lines)
    )


class Rsyslog:
    """One rsyslogd, listening on 127.0.0.1:``port``; restartable on the same port and files."""

    def __init__(self, directory: Path, *, port: int | None = None, tls: TlsFiles | None = None):
        if RSYSLOGD is None:
            raise RuntimeError("rsyslogd is not installed")
        self.directory = directory
        self.port = port or free_port()
        self.tls = tls
        self.work = directory / "work"
        self.raw_log = directory / "raw.log"
        self.fields_log = directory / "fields.log"
        self.conf = directory / "rsyslog.conf"
        self.pidfile = directory / "rsyslogd.pid"
        self.stderr = directory / "rsyslogd.stderr"
        self.proc: subprocess.Popen[bytes] | None = None

    def config(self) -> str:
        lines = [f'global(workDirectory="{self.work}" maxMessageSize="128k"']
        if self.tls is not None:
            lines += [
                f'  defaultNetstreamDriver="{TLS_DRIVER}"',
                f'  defaultNetstreamDriverCAFile="{self.tls.ca_cert}"',
                f'  defaultNetstreamDriverCertFile="{self.tls.server_cert}"',
                f'  defaultNetstreamDriverKeyFile="{self.tls.server_key}"',
            ]
        lines.append(")")
        if self.tls is not None:
            lines.append(
                f'module(load="imtcp" streamDriver.name="{TLS_DRIVER}" streamDriver.mode="1" '
                'streamDriver.authMode="anon")'
            )
        else:
            lines.append('module(load="imtcp")')
        lines += [
            f'template(name="raw" type="string" string="{RAW_TEMPLATE}")',
            f'template(name="fields" type="string" string="{FIELDS_TEMPLATE}")',
            'ruleset(name="in") {',
            f'  action(type="omfile" file="{self.raw_log}" template="raw")',
            f'  action(type="omfile" file="{self.fields_log}" template="fields")',
            "}",
            f'input(type="imtcp" address="127.0.0.1" port="{self.port}" ruleset="in")',
        ]
        return "\n".join(lines) + "\n"

    def start(self, timeout: float = 10.0) -> None:
        assert RSYSLOGD is not None
        assert self.proc is None, "already running"
        self.work.mkdir(parents=True, exist_ok=True)
        self.conf.write_text(self.config())
        self.pidfile.unlink(missing_ok=True)
        with self.stderr.open("ab") as err:
            self.proc = subprocess.Popen(
                [RSYSLOGD, "-n", "-f", str(self.conf), "-i", str(self.pidfile)],
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
            )
        deadline = time.monotonic() + timeout
        while not _listening(self.port):
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.proc = None
                raise RuntimeError(
                    f"rsyslogd exited with {code} before listening:\n{self.stderr.read_text()}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"rsyslogd did not listen on port {self.port} within {timeout} s:\n"
                    + self.stderr.read_text()
                )
            time.sleep(0.01)

    def stop(self, timeout: float = 10.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout)

    def __enter__(self) -> Rsyslog:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _lines(self, path: Path) -> list[bytes]:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return []
        complete = data[: data.rfind(b"\n") + 1]
        return complete.splitlines()

    def wait_for(self, count: int, timeout: float = 10.0) -> tuple[list[bytes], list[bytes]]:
        """Wait until both files have ``count`` complete lines; return (raw, fields) lines."""
        deadline = time.monotonic() + timeout
        while True:
            raw, fields = self._lines(self.raw_log), self._lines(self.fields_log)
            if len(raw) >= count and len(fields) >= count:
                return raw, fields
            if self.proc is None or self.proc.poll() is not None:
                raise AssertionError(
                    f"rsyslogd is not running; got {len(raw)} of {count} messages:\n"
                    + self.stderr.read_text()
                )
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"rsyslogd wrote {len(raw)} of {count} messages within {timeout} s:\n"
                    + self.stderr.read_text()
                )
            time.sleep(0.01)

    def lines(self) -> list[bytes]:
        return self._lines(self.raw_log)
