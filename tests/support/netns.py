"""Test hosts made of Linux network namespaces, on a bridge of the test's own (needs root).

    with HostNetwork(hosts=3) as net:
        net.gateway            # the bridge's address: servers of this machine listen there
        net.hosts[0].command(["celery", ...])   # runs inside host 1's namespace
        net.cut(net.hosts[1]); net.mend(net.hosts[1])
        net.kill_all(net.hosts[0])

Each host is a namespace with a veth pair whose other end is a port of the bridge. Names carry
the creating process id, so parallel runs never collide, and a run that was SIGKILLed before
its cleanup leaves names whose owner is dead: the next run removes them. The /24 is one no
interface of this machine has yet, picked under a file lock.
"""

from __future__ import annotations

import fcntl
import os
import re
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

PREFIX = "cgf"  # every name this module creates starts with it (interface names: 15 chars max)


def ip(*args: str, check: bool = True) -> str:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


@dataclass(frozen=True)
class Host:
    name: str  # "h1", "h2", ...
    namespace: str
    address: str
    outer_link: str  # the veth end on the bridge: cutting it is pulling the host's cable

    def command(self, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.namespace, *argv]

    def pids(self) -> list[int]:
        return [int(pid) for pid in ip("netns", "pids", self.namespace, check=False).split()]


class HostNetwork:
    def __init__(self, hosts: int) -> None:
        if os.geteuid() != 0:
            raise RuntimeError("network namespaces need root")
        self.tag = f"{PREFIX}{os.getpid()}"
        self.bridge = f"{self.tag}b"
        self.host_count = hosts
        self.hosts: list[Host] = []
        self.gateway = ""

    def __enter__(self) -> HostNetwork:
        try:
            self.create()
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self.remove()

    def create(self) -> None:
        remove_orphans()
        with _lock():
            subnet = _free_subnet()
            self.gateway = f"{subnet}.1"
            ip("link", "add", self.bridge, "type", "bridge")
            ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")
        for n in range(1, self.host_count + 1):
            host = Host(f"h{n}", f"{self.tag}-h{n}", f"{subnet}.{n + 1}", f"{self.tag}h{n}")
            inner = f"{self.tag}n{n}"
            ip("netns", "add", host.namespace)
            self.hosts.append(host)
            ip("link", "add", host.outer_link, "type", "veth", "peer", "name", inner)
            ip("link", "set", inner, "netns", host.namespace)
            ip("link", "set", host.outer_link, "master", self.bridge, "up")
            inside = ["-n", host.namespace]
            ip(*inside, "addr", "add", f"{host.address}/24", "dev", inner)
            ip(*inside, "link", "set", inner, "up")
            ip(*inside, "link", "set", "lo", "up")

    def cut(self, host: Host) -> None:
        """Packets to and from the host vanish; its connections stay open, as on a cable cut."""
        ip("link", "set", host.outer_link, "down")

    def mend(self, host: Host) -> None:
        ip("link", "set", host.outer_link, "up")

    def kill_all(self, host: Host) -> list[int]:
        """SIGKILL every process inside the host, as a power loss would end them."""
        killed = host.pids()
        for pid in killed:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return killed

    def remove(self) -> None:
        for host in self.hosts:
            self.kill_all(host)
        for host in self.hosts:
            _wait_empty(host)
            ip("netns", "del", host.namespace, check=False)
            ip("link", "del", host.outer_link, check=False)
        ip("link", "del", self.bridge, check=False)
        self.hosts = []


def _wait_empty(host: Host, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while host.pids() and time.monotonic() < deadline:
        time.sleep(0.05)


@contextmanager
def _lock() -> Iterator[None]:
    """Held while a run picks its subnet and claims it, so two runs never pick the same."""
    with open(Path(tempfile.gettempdir()) / f"{PREFIX}-netns.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _free_subnet() -> str:
    """A 10.213.N /24 that no interface of this machine is on (its first three octets)."""
    taken = set(re.findall(r"inet (10\.213\.\d+)\.", ip("-4", "-o", "addr")))
    for n in range(os.getpid() % 256, os.getpid() % 256 + 256):
        candidate = f"10.213.{n % 256}"
        if candidate not in taken:
            return candidate
    raise RuntimeError("no free 10.213.N.0/24 left for a test network")


def remove_orphans() -> None:
    """Namespaces and links of earlier runs whose process is gone (killed before cleanup)."""
    owners = re.compile(rf"^{PREFIX}(\d+)")
    names = [line.split()[0] for line in ip("netns", "list").splitlines() if line.strip()]
    links = re.findall(rf"^\d+: ({PREFIX}\d+[a-z]\d*)[@:]", ip("-o", "link"), re.MULTILINE)
    for name in names + links:
        owner = owners.match(name)
        if owner is None or _alive(int(owner.group(1))):
            continue
        if name in names:
            for pid in ip("netns", "pids", name, check=False).split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
            ip("netns", "del", name, check=False)
        else:
            ip("link", "del", name, check=False)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
