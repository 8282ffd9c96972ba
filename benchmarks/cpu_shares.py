"""Who used the cores between two readings: the service's processes, the broker, the
database, the benchmark itself, and anything else on the machine.

The batch log says where a batch's wall time went (model / write / publish); this says
whose CPU time filled the cores meanwhile, which is what "the broker on the same two
cores" costs. Per-process CPU times from psutil, each with its reaped children's (so a
worker that exits and is waited for stays counted, in its parent's role); one that
starts between two readings counts from zero.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import psutil

#: Roles in print order.
ROLES = ("service", "broker", "database", "bench", "other")
#: Kafka's server main class, as ``kafka-server-start.sh`` and ``deploy/kafka`` run it.
BROKER_MAIN_CLASS = "kafka.Kafka"


def role_of(pid: int, name: str, cmdline: Iterable[str], service: set[int], bench: int) -> str:
    """Which of ``ROLES`` a process plays (``service``: the pids of the service's
    processes and their children)."""
    if pid in service:
        return "service"
    if pid == bench:
        return "bench"
    if name.startswith("postgres"):
        return "database"
    if BROKER_MAIN_CLASS in cmdline:
        return "broker"
    return "other"


@dataclass(frozen=True)
class CpuReading:
    at: float
    """time.monotonic() of the reading."""
    by_pid: Mapping[int, tuple[str, float]]
    """pid -> (role, CPU seconds so far: user + system, its reaped children's included)."""


def read_cpu(service_roots: Iterable[int]) -> CpuReading:
    """Every visible process's CPU seconds so far, with its role."""
    service: set[int] = set()
    for root in service_roots:
        try:
            service |= {root, *(c.pid for c in psutil.Process(root).children(recursive=True))}
        except psutil.NoSuchProcess:
            continue
    bench = os.getpid()
    by_pid: dict[int, tuple[str, float]] = {}
    for proc in psutil.process_iter(["name", "cmdline", "cpu_times"]):
        times = proc.info["cpu_times"]
        if times is None:  # denied or gone: not ours to count
            continue
        role = role_of(
            proc.pid, proc.info["name"] or "", proc.info["cmdline"] or (), service, bench
        )
        spent = times.user + times.system + times.children_user + times.children_system
        by_pid[proc.pid] = (role, spent)
    return CpuReading(time.monotonic(), by_pid)


def cores_used(start: CpuReading, end: CpuReading) -> dict[str, float]:
    """Cores each role kept busy on average between the readings (CPU seconds / wall)."""
    wall = max(1e-6, end.at - start.at)
    used = dict.fromkeys(ROLES, 0.0)
    for pid, (role, seconds) in end.by_pid.items():
        before = start.by_pid.get(pid)
        used[role] += seconds - (before[1] if before else 0.0)
    return {role: max(0.0, s) / wall for role, s in used.items()}


def format_cores(used: Mapping[str, float], cores: int) -> str:
    busy = sum(used.values())
    parts = ", ".join(f"{role} {used[role]:.2f}" for role in ROLES)
    return f"cores busy: {parts}; {busy:.2f} of {cores}"
