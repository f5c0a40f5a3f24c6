"""Helpers shared by the benchmarks: server process, CLI, machine description, tables."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
OUT = BENCH / "out"
VENV_BIN = Path(sys.executable).parent
AUDITKEEP = str(VENV_BIN / "auditkeep")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli(*args: str, timeout: float = 600) -> str:
    """Run the auditkeep CLI; return stdout; raise with stderr on failure."""
    proc = subprocess.run(
        [AUDITKEEP, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"auditkeep {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
    return proc.stdout


def create_tenant_and_key(data_dir: Path, tenant: str = "acme") -> str:
    """`auditkeep tenants create` (if missing) + `auditkeep keys create --json` -> the key."""
    listed = json.loads(cli("tenants", "list", "--json", "--data-dir", str(data_dir)))
    if not any(t["slug"] == tenant for t in listed):
        cli("tenants", "create", tenant, "--data-dir", str(data_dir))
    out = cli(
        "keys",
        "create",
        "--tenant",
        tenant,
        "--scopes",
        "events:write,events:read",
        "--name",
        "bench",
        "--json",
        "--data-dir",
        str(data_dir),
    )
    key: str = json.loads(out)["key"]
    return key


class Server:
    """`auditkeep serve` as a child process (default settings unless given)."""

    def __init__(
        self, data_dir: Path, log_path: Path, switch_interval: float | None = None, **settings: str
    ) -> None:
        self.data_dir = data_dir
        self.switch_interval = switch_interval
        self.port = free_port()
        self.log_path = log_path
        self.settings = settings
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        args = [AUDITKEEP, "serve", "--data-dir", str(self.data_dir), "--port", str(self.port)]
        for name, value in self.settings.items():
            args += [f"--{name.replace('_', '-')}", value]
        if self.switch_interval is not None:
            # experiment only: the same CLI, with a different GIL switch interval
            code = (
                f"import sys; sys.setswitchinterval({self.switch_interval!r}); "
                "sys.argv[0] = 'auditkeep'; from auditkeep.cli import main; main()"
            )
            args = [sys.executable, "-c", code, *args[1:]]
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        env = {k: v for k, v in os.environ.items() if not k.startswith("AUDITKEEP_")}
        self.proc = subprocess.Popen(args, stdout=log, stderr=log, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server not ready: {self.log_path.read_text()[-2000:]}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def cpu_seconds(self) -> float:
        """utime + stime of the server process (all threads)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def thread_names(self) -> dict[int, str]:
        """OS thread id -> Python thread name, from `py-spy dump` (empty if unavailable)."""
        spy = VENV_BIN / "py-spy"
        if not spy.exists():
            return {}
        out = subprocess.run(
            [str(spy), "dump", "--pid", str(self.pid)], capture_output=True, text=True, check=False
        ).stdout
        return {int(m[1]): m[2] for m in re.finditer(r'Thread (\d+) \(\w+\): "([^"]*)"', out)}

    def thread_cpu(self) -> dict[int, tuple[float, float]]:
        """OS thread id -> (user, system) CPU seconds, for every thread of the server."""
        tick = os.sysconf("SC_CLK_TCK")
        out = {}
        for tid in os.listdir(f"/proc/{self.pid}/task"):
            try:
                stat = Path(f"/proc/{self.pid}/task/{tid}/stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            out[int(tid)] = (int(fields[11]) / tick, int(fields[12]) / tick)
        return out

    def writer_queue(self) -> int:
        r = httpx.get(self.url + "/readyz", timeout=10.0)
        return int(r.json().get("writer_queue_events", 0))

    def metrics(self) -> dict[str, float]:
        """Prometheus samples without labels or with their label string kept in the name."""
        text = httpx.get(self.url + "/metrics", timeout=10.0).text
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                with contextlib.suppress(ValueError):
                    out[name] = float(value)
        return out

    def stop(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def busy_cpu_seconds() -> float:
    """CPU seconds the whole machine spent busy (all processes, all CPUs), from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def tenant_id(db_path: Path, slug: str = "acme") -> int:
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as conn:
        return int(
            conn.execute("SELECT tenant_id FROM tenants WHERE slug = ?", (slug,)).fetchone()[0]
        )


def code_fingerprint() -> dict[str, Any]:
    """Which code was measured: a hash over the server and schema sources, newest change."""
    import hashlib

    files = sorted(
        [
            *(REPO / "src" / "auditkeep").rglob("*.py"),
            *(REPO / "src" / "auditkeep").rglob("*.sql"),
            *(REPO / "clients" / "python" / "src").rglob("*.py"),
        ]
    )
    digest = hashlib.sha256()
    newest = 0.0
    for f in files:
        digest.update(str(f.relative_to(REPO)).encode() + b"\0" + f.read_bytes())
        newest = max(newest, f.stat().st_mtime)
    return {
        "sha256": digest.hexdigest()[:16],
        "files": len(files),
        "newest_change": datetime.fromtimestamp(newest, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    try:
        wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("\n")[0]
    except OSError:
        wrk = ""
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "mem_gb": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "wrk": wrk,
    }


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = max(0, min(len(s) - 1, round(p / 100 * len(s) + 0.5) - 1))
    return s[k]


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = [
        "  ".join(
            h.ljust(w) if i == 0 else h.rjust(w)
            for i, (h, w) in enumerate(zip(header, widths, strict=True))
        )
    ]
    lines.append("  ".join("-" * w for w in widths))
    for r in rows:
        lines.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
    return "\n".join(lines)
