"""A private Kafka cluster for one test module: ``deploy/kafka/kafka.sh`` with its own
state directory and ports, so the shared broker at 9092 is never touched."""

from __future__ import annotations

import os
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from depdetect.settings import REPO_ROOT

KAFKA_SH = REPO_ROOT / "deploy" / "kafka" / "kafka.sh"


def free_port_block(size: int, *, start: int = 20000, stop: int = 60000) -> int:
    """A base port such that base … base+size-1 all accept a bind right now."""
    base = start + (os.getpid() * 7) % (stop - start - size)
    for offset in range(0, stop - start, size):
        candidate = start + (base - start + offset) % (stop - start - size)
        sockets = []
        try:
            for port in range(candidate, candidate + size):
                s = socket.socket()
                sockets.append(s)
                s.bind(("127.0.0.1", port))
            return candidate
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError(f"no block of {size} free ports")


@dataclass
class KafkaCluster:
    """``kafka.sh`` on a private state dir and port block; node i serves on base+2(i-1)."""

    state_dir: Path
    nodes: int = 3
    base_port: int = field(default_factory=lambda: free_port_block(6))

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DEPDETECT_KAFKA_STATE_DIR": str(self.state_dir),
            "DEPDETECT_KAFKA_PORT": str(self.base_port),
            # Three JVMs on a small CI machine: keep each one lean.
            "DEPDETECT_KAFKA_HEAP_OPTS": "-Xms96m -Xmx384m",
        }

    def sh(self, *args: str, timeout: float = 300) -> str:
        done = subprocess.run(
            ["bash", str(KAFKA_SH), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise AssertionError(f"kafka.sh {' '.join(args)} failed:\n{done.stderr[-3000:]}")
        return done.stdout.strip()

    def start(self) -> KafkaCluster:
        self.sh("start", "--nodes", str(self.nodes))
        self.sh("wait", "240")
        return self

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{self.port(n)}" for n in range(1, self.nodes + 1))

    def port(self, node: int) -> int:
        return self.base_port + 2 * (node - 1)

    def node_of_port(self, port: int) -> int:
        return (port - self.base_port) // 2 + 1

    def kill(self, node: int) -> None:
        """SIGKILL one node: no controlled shutdown, no goodbye to clients."""
        self.sh("kill", str(node))

    def restart(self, node: int) -> None:
        self.sh("start-node", str(node))

    def wait(self, timeout: int = 240) -> None:
        self.sh("wait", str(timeout), timeout=timeout + 30)

    def stop(self) -> None:
        subprocess.run(
            ["bash", str(KAFKA_SH), "kill"], env=self.env, capture_output=True, check=False
        )
