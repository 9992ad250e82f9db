"""The body of `airoad serve MODEL`: resolve the model in the registry, load it, run uvicorn.

Everything a user can get wrong (an unknown lab, a model not trained yet, a port in use, gradio
missing for --ui) is found before the server starts and is one line. The port is bound here,
not by uvicorn, so "in use" is our sentence and `--port 0` prints the port the system picked.
"""

from __future__ import annotations

import errno
import secrets
import signal
import socket

from rich.console import Console
from rich.markup import escape

from airoad.errors import AiroadError


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on (host, port), or one line saying why not."""
    if not 0 <= port <= 65535:
        raise AiroadError(f"--port must be between 0 and 65535, got {port}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise AiroadError(f"--host {host} is not an address this machine has") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise AiroadError(
                f"port {port} on {host} is already in use: stop the other server or pick "
                "another with --port"
            ) from None
        raise AiroadError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve(
    console: Console,
    lab_id: str,
    alias: str,
    quick: bool,
    backend: str,
    host: str,
    port: int,
    api_keys: list[str],
    rate: float,
    ui: bool,
    log_level: str,
) -> None:
    from airoad.production import serving, serving_registry

    if backend not in serving.BACKENDS:
        raise AiroadError(f"--backend must be one of {', '.join(serving.BACKENDS)}, not {backend}")
    if rate <= 0:
        raise AiroadError(f"--rate is requests per second per key: give a number > 0, not {rate}")
    if ui:
        from airoad.production import serving_ui

        serving_ui.import_gradio()  # missing extra: one line now, not after loading the model
    sock = bind(host, port)  # before the slow part: a port in use fails at once
    try:
        with console.status(f"looking up {lab_id}@{alias} in the model registry..."):
            found = serving_registry.resolve_model(lab_id, alias, quick)
        if found.registered_now:
            console.print(
                f"registered {escape(str(found.folder))} as {lab_id} version {found.version} "
                f"with alias '{alias}'"
            )
        keys = api_keys or [secrets.token_urlsafe(16)]
        with console.status(f"loading {lab_id} version {found.version} ({backend})..."):
            parts = serving.load_parts(found.folder, backend)
            app = serving.build_app(
                parts, dict.fromkeys(keys, rate), name=lab_id, version=found.version
            )
            if ui:
                serving_ui.mount_ui(app, parts, lab_id, keys)
        url = _url(sock)
        console.print(f"serving {lab_id}@{alias} (version {found.version}, {backend}) at {url}")
        console.print(f"  API docs: {url}/docs" + (f"   demo page: {url}/ui" if ui else ""))
        console.print(f"  key: send the header 'X-API-Key: {keys[0]}'")
        console.print("  stop with Ctrl+C (requests in flight are finished first)")
        _run(app, sock, log_level)
    finally:
        sock.close()


def _run(app, sock: socket.socket, log_level: str) -> None:
    """uvicorn on the bound socket. On SIGTERM/SIGINT it stops taking connections, finishes the
    requests in flight and runs the app's shutdown; uvicorn then re-raises the signal it caught,
    which would kill us with it: our own no-op handlers make that a clean exit 0."""
    import uvicorn

    config = uvicorn.Config(
        app, log_level=log_level, timeout_graceful_shutdown=30, lifespan="on", access_log=False
    )
    server = uvicorn.Server(config)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: None)
    server.run(sockets=[sock])
    if server.started is False:
        raise AiroadError("the server did not start: see the messages above")
