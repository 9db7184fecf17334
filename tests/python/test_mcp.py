"""mnemo's MCP tools driven by the official MCP Python SDK: `/mcp` of `mnemo serve` over
Streamable HTTP with API keys, and `mnemo mcp` over stdio.

Two users and two agents add memories; each sees exactly what its scope allows; update,
history, delete (one, and many with `confirm`), expiry; a read key is shown only the read tools
and refused the write ones; a key tied to a user writes as that user and may not read
another's; the plan index answers search_tasks, get_task, similar_tasks; a browser Origin is
refused; a client of the oldest protocol revision (2024-11-05) is served.

    python test_mcp.py MNEMO_BINARY
"""

import asyncio
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time

import httpx2
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

ALL_TOOLS = {
    "add_memory",
    "search_memories",
    "get_memory",
    "update_memory",
    "delete_memory",
    "delete_memories",
    "memory_history",
    "search_tasks",
    "get_task",
    "similar_tasks",
    "duplicate_tasks",
    "list_collections",
}
READ_TOOLS = {
    "search_memories",
    "get_memory",
    "memory_history",
    "search_tasks",
    "get_task",
    "similar_tasks",
    "duplicate_tasks",
    "list_collections",
}

PLAN = """# Plan de test

## Phase 1 : Stockage

- [ ] **1.1** Ajouter un cache LRU devant le magasin de vecteurs
- [x] **1.2** Écrire la documentation de l'API REST
- [ ] **1.3** Mettre en place un cache LRU pour les requêtes fréquentes
"""


def new_key(binary, name, scopes, **extra):
    """A fresh key from `mnemo key new`: the secret, and its lines of the config file."""
    printed = subprocess.run(
        [binary, "key", "new", "--name", name, "--scopes", ",".join(scopes)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    secret = printed.splitlines()[0].rsplit(" ", 1)[1]
    lines = printed[printed.index("[[keys]]"):].rstrip("\n").splitlines()
    lines += [f"{field} = {json.dumps(value)}" for field, value in extra.items()]
    return secret, "\n".join(lines) + "\n"


def start(binary, work, config):
    out = open(os.path.join(work, "serve.out"), "w+")
    err = open(os.path.join(work, "serve.err"), "w+")
    server = subprocess.Popen(
        [binary, "serve", "--bind", "127.0.0.1:0", "--data-dir", os.path.join(work, "data"),
         "--config", config],
        stdout=out,
        stderr=err,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        out.seek(0)
        for line in out.read().splitlines():
            if line.startswith("listening on "):
                return server, line.removeprefix("listening on ").strip()
        if server.poll() is not None:
            err.seek(0)
            raise SystemExit(f"mnemo serve exited: {err.read()}")
        time.sleep(0.1)
    server.kill()
    raise SystemExit("mnemo serve did not start")


class Tools:
    """One MCP client session; `call` returns the structured result or raises ToolError."""

    def __init__(self, session):
        self.session = session

    async def names(self):
        listed = await self.session.list_tools()
        return {tool.name: tool for tool in listed.tools}

    async def call(self, name, **arguments):
        result = await self.session.call_tool(name, arguments)
        if result.is_error:
            raise ToolError(result.structured_content["error"])
        return result.structured_content


class ToolError(Exception):
    def __init__(self, error):
        super().__init__(f"{error['code']}: {error['message']}")
        self.code = error["code"]
        self.message = error["message"]


async def expect_error(code, call):
    try:
        await call
    except ToolError as err:
        assert err.code == code, f"expected {code}, got {err.code}: {err.message}"
        return err
    raise AssertionError(f"expected the tool error {code}")


async def over_http(base, secret, work):
    client = httpx2.AsyncClient(headers={"Authorization": f"Bearer {secret}"}, timeout=60)
    async with streamable_http_client(f"{base}/mcp", http_client=client) as (read, write):
        async with ClientSession(read, write) as session:
            initialized = await session.initialize()
            assert initialized.server_info.name == "mnemo", initialized
            await work(Tools(session))


def texts(found):
    return {item["text"] for item in found["result"]}


async def memories_by_scope(tools):
    names = await tools.names()
    assert set(names) == ALL_TOOLS, sorted(names)
    schema = names["add_memory"].input_schema
    assert schema["required"] == ["text"], schema
    assert "user_id" in schema["properties"] and schema["properties"]["text"].get("description")
    assert names["delete_memories"].annotations.destructive_hint is True

    added = {}
    for text, scope in [
        ("Alice prefers tea to coffee", {"user_id": "alice"}),
        ("Alice's build agent deploys on Fridays", {"user_id": "alice", "agent_id": "builder"}),
        ("Alice's review agent flags long functions", {"user_id": "alice", "agent_id": "reviewer"}),
        ("Bob prefers coffee to tea", {"user_id": "bob"}),
        ("This run is about the billing refactor", {"user_id": "alice", "run_id": "run-1"}),
    ]:
        answer = await tools.call("add_memory", text=text, metadata={"topic": "test"}, **scope)
        assert answer["status"] == "added", answer
        added[text] = answer["id"]
    again = await tools.call("add_memory", text="Alice prefers tea to coffee", user_id="alice")
    assert again == {"id": added["Alice prefers tea to coffee"], "status": "unchanged", "similar": []}

    seen = lambda **scope: tools.call("search_memories", query="what does she like", limit=20, **scope)
    assert texts(await seen(user_id="alice")) == {"Alice prefers tea to coffee"}
    assert texts(await seen(user_id="alice", agent_id="builder")) == {
        "Alice prefers tea to coffee",
        "Alice's build agent deploys on Fridays",
    }
    assert texts(await seen(user_id="alice", agent_id="reviewer")) == {
        "Alice prefers tea to coffee",
        "Alice's review agent flags long functions",
    }
    assert texts(await seen(user_id="alice", run_id="run-1")) == {
        "Alice prefers tea to coffee",
        "This run is about the billing refactor",
    }
    assert texts(await seen(user_id="bob")) == {"Bob prefers coffee to tea"}
    assert len((await seen(user_id="alice", wider=True))["result"]) == 4
    hybrid = await tools.call("search_memories", query="Fridays deploys", user_id="alice",
                              agent_id="builder", mode="hybrid", limit=1)
    assert texts(hybrid) == {"Alice's build agent deploys on Fridays"}, hybrid
    future = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)).isoformat()
    assert (await tools.call("search_memories", query="tea", user_id="alice",
                             created_after=future))["result"] == []
    by_filter = await tools.call("search_memories", query="tea", user_id="bob",
                                 filter={"must": [{"key": "topic", "match": {"value": "test"}}]})
    assert texts(by_filter) == {"Bob prefers coffee to tea"}
    await expect_error("invalid_request", tools.call("search_memories", query="x", user_id="a", mode="fuzzy"))
    await expect_error("invalid_request", tools.call("add_memory", txt="typo", user_id="alice"))
    await expect_error("unprocessable", tools.call("add_memory", text="no scope at all"))

    tea = added["Alice prefers tea to coffee"]
    updated = await tools.call("update_memory", id=tea, text="Alice prefers green tea")
    assert updated["text"] == "Alice prefers green tea"
    assert (await tools.call("get_memory", id=tea))["text"] == "Alice prefers green tea"
    await tools.call("delete_memory", id=tea)
    await expect_error("not_found", tools.call("get_memory", id=tea))
    history = (await tools.call("memory_history", id=tea))["history"]
    assert [entry["change"] for entry in history] == ["added", "updated", "deleted"], history
    assert history[1]["before"]["text"] == "Alice prefers tea to coffee"

    soon = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=2)).isoformat()
    fleeting = await tools.call("add_memory", text="The build is red right now", user_id="carol",
                                expires_at=soon)
    assert texts(await tools.call("search_memories", query="build", user_id="carol")) == {
        "The build is red right now"
    }
    await asyncio.sleep(2.5)
    assert (await tools.call("search_memories", query="build", user_id="carol"))["result"] == []
    await expect_error("not_found", tools.call("get_memory", id=fleeting["id"]))

    refused = await expect_error("invalid_request", tools.call("delete_memories", user_id="alice"))
    assert "confirm" in refused.message
    forgotten = await tools.call("delete_memories", user_id="alice", confirm=True)
    assert forgotten == {"deleted": 3}, forgotten
    assert (await seen(user_id="alice", wider=True))["result"] == []
    assert texts(await seen(user_id="bob")) == {"Bob prefers coffee to tea"}


async def plan_index(tools):
    found = await tools.call("search_tasks", query="cache LRU", limit=3)
    titles = [hit["payload"]["title"] for hit in found["result"]]
    assert any("cache LRU" in title for title in titles), titles
    first = found["result"][0]["payload"]["id"]
    task = await tools.call("get_task", id=first)
    assert task["payload"]["id"] == first
    similar = await tools.call("similar_tasks", id=first, limit=2)
    assert all(hit["payload"]["id"] != first for hit in similar["result"])
    keyword = await tools.call("search_tasks", query="1.2", mode="hybrid", limit=1)
    assert keyword["result"][0]["payload"]["number"] == "1.2", keyword
    collections = {c["name"] for c in (await tools.call("list_collections"))["collections"]}
    assert "tasks" in collections, collections
    await expect_error("not_found", tools.call("get_task", id="no-such-task"))


async def read_only(tools):
    assert set(await tools.names()) == READ_TOOLS
    await expect_error("forbidden", tools.call("add_memory", text="not allowed", user_id="bob"))
    assert texts(await tools.call("search_memories", query="coffee", user_id="bob")) == {
        "Bob prefers coffee to tea"
    }


async def tied_to_dave(tools):
    mine = await tools.call("add_memory", text="Dave works on the Rust port")
    assert (await tools.call("get_memory", id=mine["id"]))["user_id"] == "dave"
    assert texts(await tools.call("search_memories", query="Rust")) == {"Dave works on the Rust port"}
    await expect_error("forbidden", tools.call("search_memories", query="coffee", user_id="bob"))
    own = await tools.call("search_memories", query="Rust", user_id="dave")
    assert texts(own) == {"Dave works on the Rust port"}


async def bob_memory_id(tools):
    found = await tools.call("search_memories", query="coffee", user_id="bob")
    return found["result"][0]["id"]


def raw_post(base, secret, body, **headers):
    return httpx2.post(
        f"{base}/mcp",
        json=body,
        headers={
            "Authorization": f"Bearer {secret}",
            "Accept": "application/json, text/event-stream",
            **headers,
        },
        timeout=30,
    )


def http_checks(binary, work):
    secrets = {}
    config = os.path.join(work, "mnemo.toml")
    with open(config, "w") as file:
        for name, scopes, extra in [
            ("writer", ["read", "write"], {}),
            ("reader", ["read"], {}),
            ("dave", ["read", "write"], {"user_id": "dave"}),
        ]:
            secrets[name], lines = new_key(binary, name, scopes, **extra)
            file.write(lines)
    plans = os.path.join(work, "plans")
    os.makedirs(plans)
    with open(os.path.join(plans, "plan-test.md"), "w") as file:
        file.write(PLAN)
    subprocess.run(
        [binary, "index", plans, "--data-dir", os.path.join(work, "data")],
        check=True,
        capture_output=True,
    )
    server, base = start(binary, work, config)
    try:
        asyncio.run(over_http(base, secrets["writer"], memories_by_scope))
        asyncio.run(over_http(base, secrets["writer"], plan_index))
        asyncio.run(over_http(base, secrets["reader"], read_only))
        asyncio.run(over_http(base, secrets["dave"], tied_to_dave))
        bob = asyncio.run(over_http_value(base, secrets["writer"], bob_memory_id))
        asyncio.run(over_http(base, secrets["dave"], lambda tools: expect_error(
            "forbidden", tools.call("get_memory", id=bob))))

        unauthenticated = httpx2.post(f"{base}/mcp", json={}, timeout=30)
        assert unauthenticated.status_code == 401, unauthenticated.status_code
        initialize = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2024-11-05",
                "capabilities": {},
                "clientInfo": {"name": "old-client", "version": "0.1"},
            },
        }
        old = raw_post(base, secrets["writer"], initialize)
        assert old.status_code == 200, (old.status_code, old.text)
        assert old.json()["result"]["protocolVersion"] == "2024-11-05", old.text
        browser = raw_post(base, secrets["writer"], initialize, Origin="https://evil.example")
        assert browser.status_code == 403, (browser.status_code, browser.text)
        garbage = httpx2.post(
            f"{base}/mcp",
            content=b"{not json",
            headers={
                "Authorization": f"Bearer {secrets['writer']}",
                "Content-Type": "application/json",
                "Accept": "application/json, text/event-stream",
            },
            timeout=30,
        )
        assert 400 <= garbage.status_code < 500, (garbage.status_code, garbage.text)
    finally:
        server.terminate()
        server.wait(timeout=30)
    print("MCP over HTTP: passed")


async def over_http_value(base, secret, work):
    result = {}

    async def keep(tools):
        result["value"] = await work(tools)

    await over_http(base, secret, keep)
    return result["value"]


async def over_stdio(binary, work):
    params = StdioServerParameters(
        command=binary,
        args=["mcp", "--data-dir", os.path.join(work, "stdio-data"), "--user-id", "erin"],
        env={**os.environ},
    )
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            tools = Tools(session)
            assert set(await tools.names()) == ALL_TOOLS
            added = await tools.call("add_memory", text="Erin reviews the migration plan",
                                     agent_id="planner")
            memory = await tools.call("get_memory", id=added["id"])
            assert (memory["user_id"], memory["agent_id"]) == ("erin", "planner"), memory
            found = await tools.call("search_memories", query="migration", agent_id="planner")
            assert texts(found) == {"Erin reviews the migration plan"}
            await expect_error("forbidden", tools.call("search_memories", query="x", user_id="bob"))
    print("MCP over stdio: passed")


def main():
    binary = sys.argv[1]
    with tempfile.TemporaryDirectory() as work:
        http_checks(binary, work)
        asyncio.run(over_stdio(binary, work))


if __name__ == "__main__":
    main()
