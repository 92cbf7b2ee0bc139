"""A web page the developer visits must not reach the hub: Host, Origin, Content-Type.

Each attack is sent as a browser would send it (or a DNS-rebinding page), over
real HTTP to a real hub process on 127.0.0.1.
"""

from __future__ import annotations

import httpx
import pytest

from conftest import FakeAgent, HubProcess

#: Every kind of endpoint: the user API, the agent protocol, /mcp, health.
ENDPOINTS = [
    ("GET", "/healthz"),
    ("GET", "/v1/agents"),
    ("GET", "/v1/actions"),
    ("POST", "/v1/actions"),
    ("DELETE", "/v1/actions"),
    ("GET", "/v1/actions/a-1"),
    ("DELETE", "/v1/actions/a-1"),
    ("GET", "/v1/actions/a-1/hits"),
    ("GET", "/v1/audit"),
    ("GET", "/v1/source?location=x.py:1"),
    ("POST", "/v1/agents/register"),
    ("GET", "/v1/agents/ag-1/actions"),
    ("POST", "/v1/agents/ag-1/events"),
    ("POST", "/v1/agents/ag-1/heartbeat"),
    ("POST", "/v1/agents/ag-1/answers"),
    ("POST", "/mcp"),
    ("GET", "/mcp"),
    ("GET", "/no/such/endpoint"),
]


@pytest.fixture
def hub(shared_hub: HubProcess) -> HubProcess:
    """One hub for the module: these tests leave nothing behind that another reads."""
    return shared_hub


COUNTER = {"kind": "counter", "location": "x.py:1", "wait": 0}


def send(hub: HubProcess, method: str, path: str, **headers: str) -> httpx.Response:
    body = b"{}" if method == "POST" else None
    if body is not None:
        headers.setdefault("content-type", "application/json")
    return httpx.request(method, hub.url + path, content=body, headers=headers, timeout=10)


def assert_refused(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, (response.request.url, response.text)
    body = response.json()
    assert set(body) == {"error", "message"} and body["error"] == code, body


def placed(hub: HubProcess) -> int:
    with hub.client() as http:
        return len(http.get("/v1/actions", params={"removed": "1"}).json()["actions"])


def test_a_foreign_host_gets_421_on_every_endpoint(hub):
    for method, path in ENDPOINTS:
        response = send(hub, method, path, host="attacker.example")
        assert_refused(response, 421, "host_not_allowed")
        assert "--allowed-host" in response.json()["message"]
    # A rebinding page may keep the port; a look-alike name is still foreign.
    for host in (f"attacker.example:{hub.port}", "127.0.0.1.attacker.example", "localhost.evil"):
        assert_refused(send(hub, "GET", "/v1/agents", host=host), 421, "host_not_allowed")


def test_loopback_names_on_any_port_are_answered(hub):
    for host in ("127.0.0.1", f"127.0.0.1:{hub.port}", "localhost:1", "LOCALHOST", "[::1]:9"):
        response = send(hub, "GET", "/v1/agents", host=host)
        assert response.status_code == 200, (host, response.text)


def test_a_foreign_origin_gets_403_on_every_endpoint(hub):
    before = placed(hub)
    for origin in ("https://attacker.example", "null", f"http://attacker.example:{hub.port}"):
        for method, path in ENDPOINTS:
            assert_refused(send(hub, method, path, origin=origin), 403, "origin_not_allowed")
    assert placed(hub) == before


def test_a_cross_site_request_without_origin_is_refused(hub):
    # <img src> and <script src> send no Origin, but browsers mark them.
    for site in ("cross-site", "same-site"):
        response = send(hub, "GET", "/v1/agents", **{"sec-fetch-site": site})
        assert_refused(response, 403, "origin_not_allowed")
    assert send(hub, "GET", "/v1/agents", **{"sec-fetch-site": "none"}).status_code == 200


def test_pages_on_loopback_origins_are_allowed(hub):
    for origin in ("http://localhost:3000", "http://127.0.0.1:6274", "https://[::1]:8443"):
        assert send(hub, "GET", "/v1/agents", origin=origin).status_code == 200


def test_a_simple_request_cannot_place_an_action(hub):
    """What a page can send without a preflight: text/plain (even 'charset=json'), forms."""
    import json

    before = placed(hub)
    body = json.dumps(COUNTER)
    for origin in ({"origin": "https://attacker.example"}, {}):
        for ctype in (
            "text/plain;charset=json",
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
        ):
            response = httpx.post(
                f"{hub.url}/v1/actions", content=body, headers={"content-type": ctype, **origin}
            )
            if origin:
                assert_refused(response, 403, "origin_not_allowed")
            else:
                assert_refused(response, 415, "unsupported_media_type")
    # A POST without a body or a Content-Type (fetch with mode no-cors) neither.
    assert_refused(httpx.post(f"{hub.url}/v1/actions"), 415, "unsupported_media_type")
    assert placed(hub) == before


def test_only_json_content_types_are_read(hub):
    agent = FakeAgent(hub)
    for ctype in ("application/json; charset=latin-1", "application/jsonx", "json", ""):
        response = httpx.post(
            f"{hub.url}/v1/actions",
            content=b'{"kind": "counter", "location": "x.py:1"}',
            headers={"content-type": ctype},
        )
        assert_refused(response, 415, "unsupported_media_type")
    for ctype in (
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON;Charset=UTF-8",
    ):
        response = httpx.post(
            f"{hub.url}/v1/actions",
            content=b'{"kind": "counter", "location": "x.py:1", "wait": 0, "target": "agent:'
            + agent.id.encode()
            + b'"}',
            headers={"content-type": ctype},
        )
        assert response.status_code == 201, (ctype, response.text)


def test_mcp_is_guarded_by_the_same_check(hub):
    """The MCP SDK's own check is off; ours answers with the hub's error shape."""
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}
    headers = {"accept": "application/json, text/event-stream"}
    response = httpx.post(
        f"{hub.url}/mcp", json=initialize, headers={**headers, "host": "attacker.example"}
    )
    assert_refused(response, 421, "host_not_allowed")
    response = httpx.post(
        f"{hub.url}/mcp", json=initialize, headers={**headers, "origin": "https://evil.example"}
    )
    assert_refused(response, 403, "origin_not_allowed")


@pytest.mark.parametrize("how", ["flags", "environment"])
def test_allowed_hosts_and_origins_are_configurable(tmp_path, processes, how):
    if how == "flags":
        hub = HubProcess(
            tmp_path,
            extra=[
                "--allowed-host",
                "hub.internal",
                "--allowed-host",
                "10.1.2.3:7000",
                "--allowed-origin",
                "https://ui.example.com",
            ],
        )
    else:
        hub = HubProcess(
            tmp_path,
            env={
                "RUNTIME_MCP_ALLOWED_HOSTS": "hub.internal, 10.1.2.3:7000",
                "RUNTIME_MCP_ALLOWED_ORIGINS": "https://ui.example.com",
            },
        )
    processes.append(hub.start())
    ok = {
        "host": ["hub.internal", f"hub.internal:{hub.port}", "10.1.2.3:7000", "localhost"],
        "origin": ["https://ui.example.com", "http://hub.internal:9", "http://localhost:5173"],
    }
    refused = {
        "host": ["10.1.2.3:7001", "ui.example.com", "other.internal"],
        "origin": ["http://ui.example.com", "https://ui.example.com:444", "https://evil.example"],
    }
    for header, values in ok.items():
        for value in values:
            response = send(hub, "GET", "/v1/agents", **{header: value})
            assert response.status_code == 200, (header, value, response.text)
    for header, values in refused.items():
        for value in values:
            status, code = (
                (421, "host_not_allowed") if header == "host" else (403, "origin_not_allowed")
            )
            assert_refused(send(hub, "GET", "/v1/agents", **{header: value}), status, code)


def test_a_malformed_allowed_entry_refuses_to_start(tmp_path):
    from conftest import run_cli

    for flag, value in (("--allowed-host", "http://x/"), ("--allowed-origin", "ui.example.com")):
        out = run_cli("serve", "--port", "0", "--db", str(tmp_path / "x.db"), flag, value)
        assert out.returncode == 2, out.stderr
        assert flag in out.stderr and "Traceback" not in out.stderr
