"""The trading service over HTTP (standard library only).

``python -m trading_app.server --port 8101``; ``POST /trade`` with
``{"user_id": ..., "symbol": ..., "quantity": ...}``; ``GET /health``.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from trading_app.service import TradeExecutionService, TradeRequest

SERVICE = TradeExecutionService()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/health":
            self._reply(200, {"ok": True})
        else:
            self._reply(404, {"error": "not found"})

    def do_POST(self) -> None:
        if self.path != "/trade":
            self._reply(404, {"error": "not found"})
            return
        try:
            length = int(self.headers.get("content-length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            request = TradeRequest(str(body["user_id"]), str(body["symbol"]), int(body["quantity"]))
            result = SERVICE.execute_trade(request)
        except (KeyError, ValueError, TypeError) as exc:
            self._reply(400, {"error": f"bad trade: {exc}"})
            return
        self._reply(200, asdict(result))

    def _reply(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass  # the service's own logs go through logging


def main() -> None:
    parser = argparse.ArgumentParser(description="the demo trading service")
    parser.add_argument("--port", type=int, default=8101)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    logging.getLogger("trading").info("trading service on 127.0.0.1:%s", args.port)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
