"""systemd's notify protocol (sd_notify): readiness, watchdog pings, status and stopping,
sent as datagrams to `NOTIFY_SOCKET` when systemd set it (`Type=notify`), else nothing.

Any long-running program of cdc uses it the same way: `Notifier.from_environment()`,
`ready()` once it does its job, `keep_alive(healthy, describe)` as a task, `stopping()`.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable, Mapping

import structlog

log = structlog.get_logger("cdc.notify")


class Notifier:
    """Sends notifications to `address` (a path, or `@name` for an abstract socket);
    with no address every call does nothing. `watchdog_interval` is half of systemd's
    `WatchdogSec` (None: no watchdog asked for)."""

    def __init__(self, address: str | None, watchdog_usec: int | None = None) -> None:
        self.address = address
        self.watchdog_interval = watchdog_usec / 2e6 if watchdog_usec else None
        self._socket: socket.socket | None = None
        self._warned = False

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        """From systemd's variables (its protocol, not a cdc setting, hence read here):
        `NOTIFY_SOCKET`, and `WATCHDOG_USEC` when `WATCHDOG_PID` is unset or this process."""
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET") or None
        usec_text = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        mine = not pid or pid == str(os.getpid())
        usec = int(usec_text) if usec_text.isdigit() and mine else None
        return cls(address, usec or None)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, **fields: str) -> bool:
        """One datagram of `KEY=value` lines; False when it could not be sent (logged once:
        a missing socket must never stop the daemon)."""
        if self.address is None:
            return False
        message = "\n".join(f"{key}={value}" for key, value in fields.items()).encode()
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._socket.sendto(message, target)
        except OSError as error:
            if not self._warned:
                log.warning("notify_failed", socket=self.address, error=str(error))
                self._warned = True
            return False
        return True

    def ready(self, status: str = "") -> bool:
        fields = {"READY": "1", "MAINPID": str(os.getpid())}
        if status:
            fields["STATUS"] = status
        return self.send(**fields)

    def status(self, text: str) -> bool:
        return self.send(STATUS=text)

    def watchdog(self) -> bool:
        return self.send(WATCHDOG="1")

    def stopping(self, status: str = "stopping") -> bool:
        return self.send(STOPPING="1", STATUS=status)

    async def keep_alive(
        self, healthy: Callable[[], bool], describe: Callable[[], str] | None = None
    ) -> None:
        """Until cancelled: every `watchdog_interval` (or 5 s without a watchdog) the
        status line, and `WATCHDOG=1` only while `healthy()` (so systemd restarts a
        process whose work has stalled)."""
        if not self.enabled:
            return
        every = self.watchdog_interval or 5.0
        last_status = ""
        while True:
            if describe is not None:
                text = describe()
                if text != last_status:
                    self.status(text)
                    last_status = text
            if self.watchdog_interval is not None and healthy():
                self.watchdog()
            await asyncio.sleep(every)

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
