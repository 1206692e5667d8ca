"""A gunicorn gthread worker that bounds the time a client may take to send.

gunicorn 27's gthread worker hands a connection to a thread once its first
bytes arrive, and the thread then reads the request with a blocking socket
and no timeout. A client that sends part of a request line or its headers
and stops keeps that thread blocked indefinitely. A few such connections,
which need no token, then leave no thread for Alertmanager. gunicorn has
no setting for a read timeout on this path.

This worker gives every accepted client socket a deadline for reading each
request: a read waits at most ``READ_TIMEOUT_SECONDS``, and all reads of one
request end ``REQUEST_READ_SECONDS`` after the thread took it. A read past
either returns end of file, which gunicorn treats as a client that
disconnected: it closes the connection and logs at debug only.

NOTE: with --web.tls-cert-file gunicorn wraps the socket in an
``ssl.SSLSocket``. Read from the gunicorn 27.0.1 and CPython 3.11 sources,
not tested: that socket keeps only the per-read timeout, for the handshake
and the first request of a connection, and no deadline. A client that
sends one byte every few seconds also holds a thread for the whole
deadline. A reverse proxy in front of the enforcer removes both limits.
"""

from __future__ import annotations

import errno
import logging
import socket
import time
from typing import Any

from gunicorn.workers.gthread import TConn, ThreadWorker

logger = logging.getLogger(__name__)

# Maximum wait for one read from a client.
READ_TIMEOUT_SECONDS = 3.0
# Maximum time from a thread taking a request to its last byte read. The
# largest webhook body allowed by default, 1 MiB, reads in milliseconds on
# loopback and in about 10 s at 100 KB/s.
REQUEST_READ_SECONDS = 15.0
# Maximum time for one sendall() of a response, which Python bounds as a
# whole since 3.5. An /events reply of 1000 records is about 1 MB.
# NOTE: no test sends a reply to a client that reads slowly.
WRITE_TIMEOUT_SECONDS = 60.0


class DeadlineSocket(socket.socket):
    """A client socket whose reads end at a per-request deadline.

    gunicorn calls ``setblocking(True)`` when a thread takes a request, so
    that call starts the deadline and keeps a timeout on every operation.
    """

    deadline = 0.0

    def setblocking(self, flag: bool) -> None:
        if not flag:
            super().setblocking(False)
            return
        self.deadline = time.monotonic() + REQUEST_READ_SECONDS
        self.settimeout(READ_TIMEOUT_SECONDS)

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        if self.gettimeout() == 0.0:
            # A non-blocking socket waits in the poller, outside any request.
            return super().recv(bufsize, flags)
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            logger.debug("closing a client that did not send its request in time")
            return b""
        self.settimeout(min(remaining, READ_TIMEOUT_SECONDS))
        try:
            return super().recv(bufsize, flags)
        except TimeoutError:
            logger.debug("closing a client that stopped sending its request")
            return b""

    def sendall(self, data: Any, flags: int = 0) -> None:
        if self.gettimeout() != 0.0:
            self.settimeout(WRITE_TIMEOUT_SECONDS)
        super().sendall(data, flags)


class DeadlineThreadWorker(ThreadWorker):
    """The gthread worker with DeadlineSocket client sockets."""

    def accept(self, listener: Any) -> None:
        try:
            client, address = listener.accept()
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        guarded = DeadlineSocket(
            client.family, client.type, client.proto, fileno=client.detach()
        )
        guarded.setblocking(True)
        self.nr_conns += 1
        connection = TConn(self.cfg, guarded, address, listener.getsockname())
        self.enqueue_req(connection)
