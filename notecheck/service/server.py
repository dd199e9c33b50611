"""Running the service under uvicorn: one process per worker, each building its own pipeline at start-up.

Why not `uvicorn.run(..., workers=N)`: uvicorn 0.54 binds the shared listening socket with protocol 0, so the
workers' asyncio transports do not set TCP_NODELAY (asyncio only does so for IPPROTO_TCP sockets) and every
keep-alive request after the first waits ~40 ms for the delayed ACK (uvicorn issue #3149). The socket is
re-made here as an IPPROTO_TCP socket on the same descriptor before the workers inherit it.
"""

from __future__ import annotations

import socket

APP = "notecheck.service.app:create_app"


def serve(host: str, port: int, workers: int, *, log_level: str = "info", timeout_keep_alive: int = 5) -> None:
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    # The access log shows method, path and status only: bodies (note text) are never logged.
    config = uvicorn.Config(APP, factory=True, host=host, port=port, workers=workers, log_level=log_level,
                            timeout_keep_alive=timeout_keep_alive)
    if workers <= 1:
        uvicorn.Server(config).run()  # asyncio's own server socket already sets TCP_NODELAY
        return
    bound = config.bind_socket()
    tcp = socket.socket(bound.family, bound.type, socket.IPPROTO_TCP, fileno=bound.detach())
    tcp.set_inheritable(True)
    Multiprocess(config, sockets=[tcp]).run()
