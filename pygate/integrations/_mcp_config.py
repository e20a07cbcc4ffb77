"""The MCP gateway's configuration file (TOML), validated with pydantic.

One file names the pygate service, the upstream MCP servers and who the user is::

    service = "notes"              # the pygate service every tools/call is gated for
    hide_tools = true              # tools/list shows only the tools the service declares
    namespace_tools = "auto"       # "<server>.<tool>" for clients: "auto" (several upstreams),
                                   # true or false

    [stdio]                        # the one user a stdio gateway acts for
    user = { id = "alice", role = "analyst" }

    [http]                         # streamable HTTP: each request's bearer token names the user
    host = "127.0.0.1"
    port = 8765
    path = "/mcp"
    [[http.users]]
    token_sha256 = "<sha256 hex of the token>"   # or token = "..." (test setups)
    user = { id = "bob", role = "developer" }

    [[upstreams]]                  # an MCP server started as a child process (stdio)
    name = "notes"
    command = "python"
    args = ["notes_server.py"]
    env = { NOTES_DIR = "/tmp/notes" }

    [[upstreams]]                  # an MCP server over streamable HTTP
    name = "search"
    url = "http://127.0.0.1:9000/mcp"
    headers = { Authorization = "Bearer ..." }

Every error names the file and the field (``upstreams[1].url: ...``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from pygate._errors import ConfigError

#: An upstream's name: it prefixes its tools ("<name>.<tool>"), so no dot in it.
UPSTREAM_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GatewayUser(_Strict):
    """Who the gate decides for: ``id`` plus host facts (``role``, ...) for the policies."""

    model_config = ConfigDict(extra="allow", frozen=True)

    id: StrictStr = Field(min_length=1, max_length=256)

    def as_dict(self) -> dict[str, Any]:
        """The user document handed to the gate."""
        return self.model_dump()


class StdioUpstream(_Strict):
    """An MCP server the gateway starts as a child process and talks to over stdio."""

    name: StrictStr
    command: StrictStr = Field(min_length=1)
    args: list[StrictStr] = Field(default_factory=list)
    env: dict[StrictStr, StrictStr] = Field(default_factory=dict)
    cwd: StrictStr | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _check_name(value)


class HttpUpstream(_Strict):
    """An MCP server reached over streamable HTTP."""

    name: StrictStr
    url: StrictStr
    headers: dict[StrictStr, StrictStr] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _check_name(value)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("must be an http:// or https:// URL")
        return value


def _check_name(value: str) -> str:
    if not UPSTREAM_NAME.match(value):
        raise ValueError("must match ^[a-z][a-z0-9_-]{0,31}$ (it prefixes the tool names)")
    return value


class StdioSide(_Strict):
    """The client side over stdio: one configured user."""

    user: GatewayUser


class HttpToken(_Strict):
    """One bearer token and the user it stands for."""

    token: StrictStr | None = Field(default=None, min_length=16)
    token_sha256: StrictStr | None = None
    user: GatewayUser

    @model_validator(mode="after")
    def _one_token(self) -> HttpToken:
        if (self.token is None) == (self.token_sha256 is None):
            raise ValueError("give exactly one of token or token_sha256")
        if self.token_sha256 is not None and not _SHA256.match(self.token_sha256):
            raise ValueError("token_sha256 must be 64 lower-case hex digits")
        return self

    def digest(self) -> str:
        """The token's SHA-256 (hex): what a presented token is compared with."""
        if self.token_sha256 is not None:
            return self.token_sha256
        assert self.token is not None  # _one_token
        return token_digest(self.token)


class HttpSide(_Strict):
    """The client side over streamable HTTP: where to listen, and the token → user map."""

    host: StrictStr = "127.0.0.1"
    port: StrictInt = Field(default=8765, ge=0, le=65535)
    path: StrictStr = Field(default="/mcp", pattern=r"^/[A-Za-z0-9_/-]*$")
    users: list[HttpToken] = Field(min_length=1)

    @model_validator(mode="after")
    def _distinct(self) -> HttpSide:
        digests = [u.digest() for u in self.users]
        if len(set(digests)) != len(digests):
            raise ValueError("two users have the same token")
        return self

    def user_for(self, presented: str | None) -> GatewayUser | None:
        """The user whose token was presented (``None``: missing or unknown token)."""
        if not presented:
            return None
        digest = token_digest(presented)
        found = None
        for entry in self.users:  # compare every entry in constant time, no early exit
            if hmac.compare_digest(entry.digest(), digest):
                found = entry.user
        return found


def token_digest(token: str) -> str:
    """SHA-256 hex of a bearer token (``token_sha256`` in the config file)."""
    return hashlib.sha256(token.encode()).hexdigest()


def _upstream_kind(value: Any) -> str | None:
    """Which upstream model a table is: by the key that says how to reach the server."""
    if isinstance(value, dict):
        return "stdio" if "command" in value else "http" if "url" in value else None
    return "stdio" if isinstance(value, StdioUpstream) else "http"


_TAGS = ("stdio", "http")
Upstream = Annotated[
    Annotated[StdioUpstream, Tag("stdio")] | Annotated[HttpUpstream, Tag("http")],
    Discriminator(
        _upstream_kind,
        custom_error_type="upstream_kind",
        custom_error_message="an upstream needs either command (stdio) or url (streamable HTTP)",
    ),
]


class GatewayConfig(_Strict):
    """The whole configuration file."""

    service: StrictStr = Field(min_length=1)
    hide_tools: StrictBool = True
    namespace_tools: Literal["auto"] | StrictBool = "auto"
    upstreams: list[Upstream] = Field(min_length=1)
    stdio: StdioSide | None = None
    http: HttpSide | None = None

    @model_validator(mode="after")
    def _unique(self) -> GatewayConfig:
        names = [u.name for u in self.upstreams]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"upstream name {name!r} is used twice")
        if self.namespace_tools is False and len(names) > 1:
            raise ValueError("namespace_tools = false needs a single upstream (tool names clash)")
        return self

    @property
    def namespaced(self) -> bool:
        """Whether clients see ``<server>.<tool>`` (always when there are several upstreams)."""
        if self.namespace_tools == "auto":
            return len(self.upstreams) > 1
        return bool(self.namespace_tools)


def _where(loc: tuple[int | str, ...]) -> str:
    out = ""
    previous: int | str | None = None
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not (isinstance(previous, int) and part in _TAGS):  # the union's tag
            out += f".{part}" if out else str(part)
        previous = part
    return out or "(file)"


def parse_config(raw: Any, source: str = "config") -> GatewayConfig:
    """Validate a configuration document.

    Raises:
        ConfigError: ``<source>: <field>: <problem>`` for the first problem found.
    """
    try:
        return GatewayConfig.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        message = first["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{source}: {_where(first['loc'])}: {message}") from exc


def load_config(path: str | Path) -> GatewayConfig:
    """Read and validate a TOML configuration file.

    Raises:
        ConfigError: unreadable file, bad TOML, or a field that fails validation.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    return parse_config(raw, str(path))
