"""In-process transport for simulated rounds: counts the serialized bytes each client sends
and receives, optionally records the server's view (every message it received), and times
each party's CPU.

Backends call :meth:`RoundLog.up` for every message a client hands to the server and
:meth:`RoundLog.down` for every message the server hands to a client, and wrap party code
in :meth:`RoundLog.client_cpu` / :meth:`RoundLog.server_cpu`. Only ``bytes`` cross between
parties; nothing else is shared, so the same party objects can run over a network.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class RoundLog:
    record: bool = False
    bytes_up: int = 0
    bytes_down: int = 0
    per_client_up: dict = field(default_factory=dict)
    per_client_down: dict = field(default_factory=dict)
    client_cpu_s: dict = field(default_factory=dict)
    server_cpu_s: float = 0.0
    #: Every message the server received, in order (only when ``record``).
    server_view: list = field(default_factory=list)

    def up(self, cid: int, msg: bytes) -> bytes:
        if not isinstance(msg, (bytes, bytearray)):
            raise TypeError("parties exchange bytes only")
        self.bytes_up += len(msg)
        self.per_client_up[cid] = self.per_client_up.get(cid, 0) + len(msg)
        if self.record:
            self.server_view.append(bytes(msg))
        return msg

    def down(self, cid: int, msg: bytes) -> bytes:
        if not isinstance(msg, (bytes, bytearray)):
            raise TypeError("parties exchange bytes only")
        self.bytes_down += len(msg)
        self.per_client_down[cid] = self.per_client_down.get(cid, 0) + len(msg)
        return msg

    @contextmanager
    def client_cpu(self, cid: int):
        t0 = time.process_time()
        try:
            yield
        finally:
            self.client_cpu_s[cid] = self.client_cpu_s.get(cid, 0.0) + time.process_time() - t0

    @contextmanager
    def server_cpu(self):
        t0 = time.process_time()
        try:
            yield
        finally:
            self.server_cpu_s += time.process_time() - t0

    def stats(self) -> dict:
        n = max(1, len(self.client_cpu_s))
        out = {
            "client_cpu_s_mean": sum(self.client_cpu_s.values()) / n,
            "client_cpu_s_max": max(self.client_cpu_s.values(), default=0.0),
            "server_cpu_s": self.server_cpu_s,
            "bytes_up_max_client": max(self.per_client_up.values(), default=0),
            "bytes_down_max_client": max(self.per_client_down.values(), default=0),
        }
        if self.record:
            out["server_view"] = self.server_view
        return out
