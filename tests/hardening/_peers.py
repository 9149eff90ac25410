"""Misbehaving loopback peers for the wire tests: a black hole, a silent listener, a relay."""

from __future__ import annotations

import asyncio
import contextlib
import select
import socket
from collections.abc import AsyncIterator, Iterator


class BlackHole:
    """A loopback port whose accept queue is full, so a new connection's SYN is dropped.

    ``listener`` listens with a backlog of 0 and never accepts; ``fillers`` are the connections
    that filled its queue. :meth:`open` makes the port answer again by relaying to ``target``.
    """

    def __init__(self, listener: socket.socket, fillers: list[socket.socket]) -> None:
        self.listener = listener
        self.fillers = fillers
        self.port: int = listener.getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @contextlib.asynccontextmanager
    async def open(self, target_port: int) -> AsyncIterator[None]:
        """Accept on the same port from now on, relaying every connection to ``target_port``."""
        for filler in self.fillers:
            filler.close()
        self.listener.setblocking(False)
        server = await asyncio.start_server(
            lambda r, w: _relay(r, w, target_port), sock=self.listener
        )
        try:
            yield
        finally:
            server.close()
            await server.wait_closed()


@contextlib.contextmanager
def black_hole() -> Iterator[BlackHole]:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers: list[socket.socket] = []
    try:
        for _ in range(16):
            filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            filler.setblocking(False)
            fillers.append(filler)
            with contextlib.suppress(BlockingIOError):
                filler.connect(listener.getsockname())
            _, writable, _ = select.select([], [filler], [], 0.5)
            if not writable:
                break  # this SYN was dropped: the queue is full
        else:
            raise AssertionError("could not fill the accept queue of a loopback listener")
        yield BlackHole(listener, fillers)
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


@contextlib.asynccontextmanager
async def silent_listener() -> AsyncIterator[int]:
    """A port that accepts and reads everything but never answers: the request was sent."""

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while await reader.read(65536):
                pass
        writer.close()

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def _relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int) -> None:
    try:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        writer.close()
        return

    async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            sink.close()

    await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
