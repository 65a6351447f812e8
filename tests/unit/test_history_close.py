"""Closing the history reader drops the queries not started: at a stop with the database
gone, thousands of queued replays must not each try to connect first (a `cdc serve`
worker otherwise outlives its supervisor, retrying)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading

from cdc.settings import Dsn
from cdc.store.reader import History, HistoryUnavailable


class SilentServer(threading.Thread):
    """A TCP listener that accepts connections and never says anything (a server that
    hangs before its handshake); it counts the connections."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.accepted: list[socket.socket] = []

    def run(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = self.listener.accept()
                self.accepted.append(conn)

    def close(self) -> None:
        self.listener.close()
        for conn in self.accepted:
            conn.close()


async def test_close_drops_the_queued_queries() -> None:
    server = SilentServer()
    server.start()
    history = History(Dsn("127.0.0.1", server.port, "cdc", "", "cdc"), pool_size=2)
    queued = [asyncio.ensure_future(history.last_id()) for _ in range(50)]
    deadline = asyncio.get_running_loop().time() + 30
    while len(server.accepted) < 2:  # both threads are inside a connect
        assert asyncio.get_running_loop().time() < deadline, "no connection reached the server"
        await asyncio.sleep(0.05)
    closing = asyncio.ensure_future(history.close())
    await asyncio.sleep(0)
    server.close()  # the two connects in progress fail now
    await asyncio.wait_for(closing, 120)
    results = await asyncio.gather(*queued, return_exceptions=True)
    assert all(isinstance(r, HistoryUnavailable | asyncio.CancelledError) for r in results), results
    # Only the two queries that had started ever connected: the 48 others were dropped.
    assert len(server.accepted) == 2
