"""A traffic generator: a mix of small and large trades against the services.

``python -m trading_app.traffic --port 8101 --port 8102 [--rate 40]``
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import time


def main() -> None:
    parser = argparse.ArgumentParser(description="send a mix of trades")
    parser.add_argument("--port", type=int, action="append", required=True)
    parser.add_argument("--rate", type=float, default=40.0, help="trades per second per port")
    args = parser.parse_args()
    rng = random.Random(42)
    symbols = ["ACME", "GLOBEX", "INITECH", "HOOLI"]
    conns = {port: http.client.HTTPConnection("127.0.0.1", port, timeout=5) for port in args.port}
    n = 0
    while True:
        for port, conn in list(conns.items()):
            n += 1
            body = json.dumps(
                {
                    "user_id": f"user-{rng.randint(1, 50)}",
                    "symbol": rng.choice(symbols),
                    "quantity": rng.choice([1, 3, 10, 25, 60, 120]),
                }
            )
            try:
                conn.request("POST", "/trade", body, {"content-type": "application/json"})
                conn.getresponse().read()
            except (OSError, http.client.HTTPException):
                conn.close()
                conns[port] = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        time.sleep(1.0 / args.rate)


if __name__ == "__main__":
    main()
