"""CFactory's /mcp as a real MCP client sees it: the Python MCP SDK's Streamable HTTP
client and ClientSession against a running server, with an API key header.

Run by `cargo xtask mcp-client` (and `cargo xtask test`) in a venv holding the pinned
`mcp` package: python mcp_client.py BASE_URL KEY. The key needs read, write and ingest.
Seeds one work item, then over MCP: the initialize handshake, tools/list, a read tool
that finds the item and a propose tool that stores a proposal and sends nothing; then the
same over the per-request lifecycle (server/discover). Exits non-zero on the first
failed check and prints what it saw.
"""

import asyncio
import json
import sys
import time
import urllib.request
from datetime import datetime, timedelta, timezone

import httpx2
from mcp.client import ClientSession
from mcp.client.streamable_http import streamable_http_client

KEY = "301"
TITLE = "Retry logic 301"


def api(base, key, method, path, body=None):
    """One call to CFactory's own API; the answer's JSON."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Authorization", f"Bearer {key}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"null")


def seed(base, key):
    """Work item 301: a done coding task whose tests failed; waits until search finds it."""
    at = lambda minutes: (datetime.now(timezone.utc) - timedelta(minutes=minutes)).isoformat()
    events = [
        {"id": "c301", "correlation_key": KEY, "service": "aifactory", "task_id": "t301",
         "status": "done", "phase": "done", "time": at(30), "title": TITLE},
        {"id": "x301", "correlation_key": KEY, "service": "tfactory", "task_id": "s301",
         "status": "failed", "phase": "failed", "time": at(20), "outcome": "failure",
         "correlation": {"aifactory_task_id": "t301"}},
    ]
    api(base, key, "POST", "/api/events", events)
    for _ in range(400):
        if api(base, key, "GET", "/api/search?q=Retry%20logic").get("count") == 1:
            return
        time.sleep(0.025)
    raise SystemExit("the seeded work item never became searchable")


def check(ok, what, seen=None):
    if not ok:
        raise SystemExit(f"mcp client: FAILED: {what}" + (f"\n  saw: {seen}" if seen is not None else ""))
    print(f"mcp client: ok: {what}")


def text(result):
    return "".join(getattr(block, "text", "") for block in result.content)


async def exercise(session, note):
    """tools/list, a read tool and a propose tool on a connected session."""
    listed = await session.list_tools()
    names = [tool.name for tool in listed.tools]
    check("search" in names and "propose_kick_handback" in names, "tools/list names the read and propose tools", names)
    check(not any("confirm" in name for name in names), "there is no confirm tool", names)
    search = next(tool for tool in listed.tools if tool.name == "search")
    check(search.input_schema.get("type") == "object", "tools carry their input schema", search.input_schema)

    found = await session.call_tool("search", {"q": "Retry logic"})
    check(not found.is_error and KEY in text(found), "the read tool finds the seeded item", text(found))

    proposed = await session.call_tool("propose_kick_handback", {"correlation_key": KEY, "note": note})
    result = proposed.structured_content or {}
    check(not proposed.is_error and result.get("status") == "prepared",
          "the propose tool stores a prepared proposal", text(proposed))
    return result.get("action_id")


async def main(base, key):
    seed(base, key)
    url = base + "/mcp"
    headers = {"Authorization": f"Bearer {key}"}
    proposed = []

    async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                init = await session.initialize()
                check(init.server_info.name == "cfactory", "initialize names the server", init.server_info)
                check(init.capabilities.tools is not None, "the server offers tools", init.capabilities)
                proposed.append(await exercise(session, "from the handshake"))

    async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                found = await session.discover()
                check("2026-07-28" in found.supported_versions, "server/discover offers per-request negotiation",
                      found.supported_versions)
                proposed.append(await exercise(session, "from discover"))

    prepared = api(base, key, "GET", "/api/actions?status=prepared")["actions"]
    ids = sorted(action["id"] for action in prepared)
    check(ids == sorted(proposed), "both proposals are stored as prepared", ids)
    check(all(action["proposed_via"] == "mcp" for action in prepared), "proposals name the mcp door", prepared)
    executed = api(base, key, "GET", "/api/actions?status=executed")["actions"]
    check(executed == [], "nothing was executed", executed)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: mcp_client.py BASE_URL KEY")
    asyncio.run(main(sys.argv[1], sys.argv[2]))
