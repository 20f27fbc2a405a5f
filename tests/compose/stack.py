"""``docker compose`` for one project of the scenario, and what it prints, with secrets masked."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Variables of the caller's shell that compose would let win over the .env file.
_SHELL_OVERRIDES = re.compile(r"^(PREFECT_|ATLAS_|NOCTIS_|POSTGRES_|AUGUR_|COMPOSE_)|_IMAGE$")


class Redactor:
    """Replaces every known secret value by ``***`` in text about to be printed."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = {s for s in secrets if s}

    def __call__(self, text: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text


def free_port(preferred: int | None = None) -> int:
    """``preferred`` when nothing listens there on 127.0.0.1, otherwise any free port."""
    candidates = [preferred, 0] if preferred else [0]
    for port in candidates:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise RuntimeError("no free port on 127.0.0.1")


def write_env(example: Path, target: Path, overrides: Mapping[str, str]) -> None:
    """example.env with ``overrides`` replacing its lines (or appended), mode 0600."""
    pending = dict(overrides)
    lines = []
    for line in example.read_text(encoding="utf-8").splitlines():
        key = line.split("=", 1)[0].strip()
        if "=" in line and not line.lstrip().startswith("#") and key in pending:
            line = f"{key}={pending.pop(key)}"
        lines.append(line)
    lines += ["", "# --- the compose scenario's own settings ---"]
    lines += [f"{key}={value}" for key, value in pending.items()]
    target.touch(mode=0o600)
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")


@dataclass
class Stack:
    root: Path
    project: str
    env_file: Path
    files: Sequence[Path]
    redact: Redactor = field(default_factory=Redactor)

    def _env(self) -> dict[str, str]:
        return {k: v for k, v in os.environ.items() if not _SHELL_OVERRIDES.search(k)}

    def compose(
        self, *args: str, check: bool = True, timeout: float = 600, quiet: bool = True
    ) -> subprocess.CompletedProcess[str]:
        argv = [
            *("docker", "compose", "--ansi", "never", "--progress", "plain"),
            *("--project-directory", str(self.root), "-p", self.project),
            *("--env-file", str(self.env_file)),
            *(arg for path in self.files for arg in ("-f", str(path))),
            *args,
        ]
        done = subprocess.run(
            argv,
            cwd=self.root,
            env=self._env(),
            capture_output=quiet,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            output = self.redact((done.stdout or "") + (done.stderr or ""))
            raise AssertionError(f"docker compose {' '.join(args)} failed:\n{output[-4000:]}")
        return done

    def exec(self, service: str, script: str, *, stdin: bytes | None = None) -> bytes:
        """``docker compose exec -T SERVICE sh -c SCRIPT``: its stdout (bytes); fails loudly."""
        argv = [
            *("docker", "compose", "--project-directory", str(self.root), "-p", self.project),
            *("--env-file", str(self.env_file)),
            *(arg for path in self.files for arg in ("-f", str(path))),
            *("exec", "-T", service, "sh", "-c", script),
        ]
        done = subprocess.run(
            argv, cwd=self.root, env=self._env(), input=stdin, capture_output=True,
            timeout=600, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            error = self.redact(done.stderr.decode(errors="replace"))
            raise AssertionError(f"{service}: `{script}` failed: {error[-2000:]}")
        return done.stdout

    def containers(
        self, service: str | None = None, *, all_states: bool = False
    ) -> list[dict[str, Any]]:
        """``docker compose ps`` rows (Name, Service, State, Health, ExitCode, ...)."""
        args = [
            "ps",
            "--format",
            "json",
            *(["-a"] if all_states else []),
            *([service] if service else []),
        ]
        out = self.compose(*args).stdout.strip()
        if not out:
            return []
        if out.startswith("["):
            return list(json.loads(out))
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def exit_code(self, service: str, timeout: float = 180) -> int:
        """Wait for the one-shot ``service`` to exit; its exit code."""
        [container] = self.containers(service, all_states=True)
        done = subprocess.run(
            ["docker", "wait", container["Name"]],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        )
        return int(done.stdout.strip())

    def health(self, name: str) -> str:
        return docker("inspect", "-f", "{{if .State.Health}}{{.State.Health.Status}}{{end}}", name)

    def wait_healthy(self, service: str, count: int, timeout: float = 300) -> list[str]:
        deadline = time.monotonic() + timeout
        while True:
            names = [c["Name"] for c in self.containers(service)]
            states = {name: self.health(name) for name in names}
            if len(names) == count and all(s == "healthy" for s in states.values()):
                return names
            if time.monotonic() > deadline:
                raise AssertionError(f"{service}: wanted {count} healthy, got {states}")
            time.sleep(1)

    def logs(self, *services: str, tail: int | None = None) -> str:
        args = ["logs", "--no-color", *(["--tail", str(tail)] if tail else []), *services]
        done = self.compose(*args, check=False, timeout=120)
        return (done.stdout or "") + (done.stderr or "")


def docker(*args: str, timeout: float = 120) -> str:
    done = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed: {done.stderr.strip()[-2000:]}")
    return done.stdout.strip()


def process_uids(container: str) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """(uid, command) of the processes of a running container, as the host's kernel sees them:
    its main process and every descendant, then, apart, the ``docker exec`` processes beside
    them (health checks; they run as the image's default user, root in the database images
    whose entry point drops to ``postgres``, as in the official ones)."""
    main = int(docker("inspect", "-f", "{{.State.Pid}}", container))
    out = docker("top", container, "-eo", "pid,ppid,uid,args")
    parent: dict[int, int] = {}
    rows: dict[int, tuple[int, str]] = {}
    for line in out.splitlines()[1:]:
        pid, ppid, uid, *command = line.split(None, 3)
        parent[int(pid)] = int(ppid)
        rows[int(pid)] = (int(uid), command[0].strip() if command else "")

    def in_tree(pid: int) -> bool:
        while pid in parent:
            if pid == main:
                return True
            pid = parent[pid]
        return pid == main

    assert main in rows, f"{container}: its main process {main} is not among {sorted(rows)}"
    tree = [row for pid, row in rows.items() if in_tree(pid)]
    execs = [row for pid, row in rows.items() if not in_tree(pid)]
    return tree, execs


def image_size_mb(image: str) -> float:
    return int(docker("image", "inspect", "-f", "{{.Size}}", image)) / 1e6
