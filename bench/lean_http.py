"""A lean asyncio HTTP/1.1 client for the load benches: one keep-alive connection, no pool.

``bench/soak.py`` ran its 200 consumers on httpx's ``AsyncClient``: 3.7 ms of the load
process's CPU per request under the soak (its pool, its models, its event hooks), so on 2 cores
the client took CPU from the servers it measured, and each request waited in the client's busy
event loop before it was sent and after its answer came.
This client does only what the consumers need: GET and POST (form or JSON) on one connection
from a chosen local address, cookies (the CSRF cookie), Content-Length or chunked bodies.

``Response.elapsed_ms`` runs from the request's first byte written to its body's last byte
read: the time the request spent waiting inside the client before it was sent is not in it.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import time
from dataclasses import dataclass, field
from urllib.parse import urlencode


class HTTPError(Exception):
    """The request got no complete answer."""


class Timeout(HTTPError):
    pass


class Disconnected(HTTPError):
    pass


@dataclass
class Response:
    status_code: int
    headers: dict[str, str]
    content: bytes
    elapsed_ms: float = 0.0

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")


@dataclass
class LeanClient:
    """One keep-alive HTTP/1.1 connection to ``host:port`` from ``local_address``."""

    host: str
    port: int
    local_address: str | None = None
    timeout: float = 30.0
    cookies: dict[str, str] = field(default_factory=dict)
    _reader: asyncio.StreamReader | None = None
    _writer: asyncio.StreamWriter | None = None

    async def get(self, path: str, headers: dict[str, str] | None = None) -> Response:
        return await self.request("GET", path, headers=headers)

    async def post(
        self,
        path: str,
        *,
        data: dict[str, str] | None = None,
        json: object = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        if json is not None:
            body = jsonlib.dumps(json).encode()
            kind = "application/json"
        else:
            body = urlencode(data or {}).encode()
            kind = "application/x-www-form-urlencoded"
        return await self.request(
            "POST", path, headers={"Content-Type": kind, **(headers or {})}, body=body
        )

    async def request(
        self, method: str, path: str, *, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> Response:
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        for name, value in (headers or {}).items():
            head.append(f"{name}: {value}")
        if self.cookies:
            head.append("Cookie: " + "; ".join(f"{k}={v}" for k, v in self.cookies.items()))
        if body or method == "POST":
            head.append(f"Content-Length: {len(body)}")
        payload = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
        # A kept-alive connection the server closed meanwhile is seen only when the answer does
        # not come: a GET is then sent again once on a new connection (httpx did the same).
        for attempt in (0, 1):
            reused = self._writer is not None
            try:
                async with asyncio.timeout(self.timeout):
                    if self._writer is None:
                        await self._connect()
                    started = time.perf_counter()
                    self._writer.write(payload)
                    response = await self._read()
                    response.elapsed_ms = (time.perf_counter() - started) * 1000
                    return response
            except TimeoutError:
                self._close()
                raise Timeout(f"{method} {path}: no answer in {self.timeout} s") from None
            except (OSError, asyncio.IncompleteReadError) as exc:
                self._close()
                if attempt == 0 and reused and method == "GET":
                    continue
                raise Disconnected(f"{method} {path}: {type(exc).__name__}") from exc
        raise AssertionError("unreachable")

    async def _connect(self) -> None:
        local = (self.local_address, 0) if self.local_address else None
        self._reader, self._writer = await asyncio.open_connection(
            self.host, self.port, local_addr=local
        )

    async def _read(self) -> Response:
        reader = self._reader
        block = await reader.readuntil(b"\r\n\r\n")
        lines = block.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if not line:
                continue
            name, _, value = line.partition(":")
            name, value = name.strip().lower(), value.strip()
            if name == "set-cookie":
                pair = value.split(";", 1)[0]
                key, _, val = pair.partition("=")
                self.cookies[key.strip()] = val.strip()
            headers[name] = value
        if "content-length" in headers:
            content = await reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")  # no trailers expected
                    break
                parts.append(await reader.readexactly(size))
                await reader.readexactly(2)
            content = b"".join(parts)
        else:
            content = await reader.read()
            headers["connection"] = "close"
        if headers.get("connection", "").lower() == "close":
            self._close()
        return Response(status, headers, content)

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None

    async def aclose(self) -> None:
        writer = self._writer
        self._close()
        if writer is not None:
            try:
                await writer.wait_closed()
            except OSError:
                pass
