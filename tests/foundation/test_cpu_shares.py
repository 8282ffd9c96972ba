"""The service benchmark's CPU attribution (benchmarks/cpu_shares.py): roles by process,
and a busy service process's CPU time counted as the service's, not the benchmark's."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil

from benchmarks.cpu_shares import ROLES, cores_used, format_cores, read_cpu, role_of

#: Keeps one core busy for 0.8 s of CPU time, then idles until its stdin closes.
BUSY_THEN_IDLE = (
    "import sys, time\n"
    "end = time.process_time() + 0.8\n"
    "while time.process_time() < end: pass\n"
    "sys.stdin.read()\n"
)


def test_roles_follow_the_process() -> None:
    service, bench = {10, 11}, 20
    assert role_of(11, "depdetect", ["depdetect", "serve"], service, bench) == "service"
    assert role_of(20, "python", ["python", "bench_service.py"], service, bench) == "bench"
    assert role_of(30, "postgres", ["postgres: checkpointer"], service, bench) == "database"
    kafka = ["/usr/bin/java", "-Xmx1g", "-cp", "/lib/*", "kafka.Kafka", "server.properties"]
    assert role_of(40, "java", kafka, service, bench) == "broker"
    # Another JVM on the machine is not the broker.
    assert role_of(41, "java", ["/usr/bin/java", "-jar", "app.jar"], service, bench) == "other"


def _wrapped(command: str) -> list[str]:
    # A parent with the busy process as its child: the service's root pid and a worker.
    return [
        sys.executable,
        "-c",
        f"import subprocess, sys; subprocess.run([sys.executable, '-c', {command!r}])",
    ]


def test_a_busy_service_worker_is_counted_as_the_service() -> None:
    with subprocess.Popen(_wrapped(BUSY_THEN_IDLE), stdin=subprocess.PIPE) as root:
        start = read_cpu([root.pid])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            workers = psutil.Process(root.pid).children()
            if workers and sum(workers[0].cpu_times()[:2]) >= 0.8:
                break
            time.sleep(0.05)
        end = read_cpu([root.pid])
        assert root.stdin is not None
        root.stdin.close()
        root.wait(10)
    wall = end.at - start.at
    used = cores_used(start, end)
    assert set(used) == set(ROLES)
    # The worker's 0.8 CPU seconds (less what it spent before the first reading) are the
    # service's; this test, sleeping between polls, is not.
    assert used["service"] * wall >= 0.6
    assert used["bench"] < used["service"] / 4
    assert format_cores(used, 2).startswith("cores busy: service ")
