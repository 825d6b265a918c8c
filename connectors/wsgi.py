"""werkzeug's threaded HTTP server around a WSGI app, on its own thread (Facebook webhooks, Slack's Request URL)."""

from __future__ import annotations

import threading
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server


class _QuietHandler(WSGIRequestHandler):
    """No access log: query strings and paths may carry tokens (the webhook handshake's verify token)."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        return


class WsgiServer:
    """Serves `app` on host:port (0: any free port) until stop(); stop() also calls app.close() if it has one."""

    def __init__(self, app: Any, *, host: str, port: int, certfile: str = "", keyfile: str = "",
                 name: str = "wsgi-server") -> None:
        self.app = app
        ssl_context = (certfile, keyfile) if certfile and keyfile else None
        self._server: BaseWSGIServer = make_server(host, port, app, threaded=True, ssl_context=ssl_context,
                                                    request_handler=_QuietHandler)
        self.port = self._server.server_port
        self.url = f"{'https' if ssl_context else 'http'}://{host}:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name=name, daemon=True)

    def start(self) -> WsgiServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        close = getattr(self.app, "close", None)
        if callable(close):
            close()
