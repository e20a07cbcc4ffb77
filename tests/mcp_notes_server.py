"""A real MCP server (the SDK's FastMCP) that records every call it receives.

``python notes_server.py stdio`` or ``python notes_server.py http PORT``; each tool call
appends one JSON line ``{"tool": ..., "arguments": ...}`` to the file named by
``NOTES_RECORD``, so a test can prove that a refused call never reached this server.
"""

from __future__ import annotations

import json
import os
import sys

from mcp.server.fastmcp import FastMCP

server = FastMCP("notes", host="127.0.0.1", port=int(sys.argv[2]) if len(sys.argv) > 2 else 8000)


def _record(tool: str, **arguments: object) -> None:
    with open(os.environ["NOTES_RECORD"], "a") as f:
        f.write(json.dumps({"tool": tool, "arguments": arguments}) + "\n")


@server.tool()
def echo(text: str) -> str:
    """Say the text back."""
    _record("echo", text=text)
    return f"echo: {text}"


@server.tool()
def add(a: float, b: float) -> dict[str, float]:
    """Add two numbers (structured result)."""
    _record("add", a=a, b=b)
    return {"sum": a + b}


@server.tool()
def delete_note(name: str) -> str:
    """Delete a note (the policy wants a person to review it)."""
    _record("delete_note", name=name)
    return f"deleted {name}"


@server.tool()
def read_secrets() -> str:
    """A tool the service never declares: refused and hidden."""
    _record("read_secrets")
    return "the secrets"


if __name__ == "__main__":
    server.run(transport="streamable-http" if sys.argv[1] == "http" else "stdio")
