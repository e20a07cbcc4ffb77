"""Live policy management of one OPA through its REST API: push policy data, list what is loaded.

These are management calls, so they go through opa-python-client (its job in pygate);
decisions never do. A push is validated exactly like a bundle build before anything is sent.

An OPA that loaded a bundle owns the bundle's roots and refuses Data API writes under them:
for a fleet of sidecars publish a bundle instead (``pygate bundle build``). A push is for a
single sidecar started without a bundle (``pygate sidecar up --writable``, or
``opa run --server rego/``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from opa_client import OpaClient
from opa_client.errors import ConnectionsError, PolicyNotFoundError, RegoParseError

from pygate._errors import ConfigError, PublishError
from pygate.policy._checked import with_checked
from pygate.policy._policy_data import load_policy_data, validate_policy_data
from pygate.policy._policy_index import with_index

#: Where policy data lives in OPA (``data.pygate.config``), as a Data API path.
CONFIG_PATH = "pygate/config"


@dataclass(frozen=True)
class Loaded:
    """What one OPA has loaded."""

    url: str
    modules: list[str]
    bundles: dict[str, dict[str, Any]]
    data_keys: list[str]
    declarative_policies: list[dict[str, Any]] = field(default_factory=list)


def _client(url: str, timeout: float) -> OpaClient:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"--opa-url {url!r}: management calls need http://host:port")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return OpaClient(host=parts.hostname, port=port, ssl=parts.scheme == "https",
                     timeout=timeout, retries=0)  # fmt: skip


@contextmanager
def _talking_to(url: str, step: str, timeout: float) -> Iterator[OpaClient]:
    """Open a client; the one place where transport failures become PublishError."""
    client = _client(url, timeout)
    try:
        yield client
    except (requests.RequestException, ConnectionsError, ValueError) as exc:
        raise PublishError(step, f"OPA at {url} did not answer: {exc}") from exc
    finally:
        client.close_connection()


def _bundles(client: OpaClient) -> dict[str, dict[str, Any]]:
    try:
        result = client.get_data("system/bundles").get("result", {})
    except PolicyNotFoundError:
        return {}  # no bundle loaded: OPA answers without a result
    return result if isinstance(result, dict) else {}


def _owner(bundles: dict[str, dict[str, Any]], path: str) -> tuple[str, list[str]] | None:
    """The bundle whose roots cover ``path`` (OPA refuses writes there), if any."""
    for name, info in bundles.items():
        roots = (info.get("manifest") or {}).get("roots")
        roots = [""] if roots is None else roots
        for root in roots:
            root = str(root).strip("/")
            if root == "" or path == root or path.startswith(f"{root}/"):
                return name, [str(r) for r in roots]
    return None


def _current_config(client: OpaClient) -> dict[str, Any]:
    try:
        result = client.get_data(CONFIG_PATH).get("result")
    except PolicyNotFoundError:
        return {}
    return result if isinstance(result, dict) else {}


def push_policy_data(
    path: str | os.PathLike[str],
    opa_url: str,
    *,
    replace: bool = False,
    timeout: float = 5.0,
) -> dict[str, Any]:
    """Validate a policy data file and load it into a running OPA through the Data API.

    By default the file's top-level keys replace those of the data OPA has now (as with
    ``pygate bundle build --data``); ``replace=True`` makes the file the whole document.
    The result is validated before it is sent, with a fresh ``declarative_index`` and
    ``checked`` copy; the next decision uses it.

    Args:
        path: JSON policy data (``rego/pygate/config/data.json`` shape).
        opa_url: the OPA to update (``http://host:port``).
        replace: send the file as the whole ``data.pygate.config`` document.
        timeout: seconds per HTTP call.

    Returns:
        The document now loaded at ``data.pygate.config``.

    Raises:
        PolicyDataError: the file, or the merged document, breaks the schema.
        PublishError: the OPA loaded a bundle that owns ``pygate/config``, refused the
            write, or could not be reached.
        ConfigError: the URL is not ``http(s)://``.
    """
    new = load_policy_data(Path(path))
    with _talking_to(opa_url, "push", timeout) as client:
        owner = _owner(_bundles(client), CONFIG_PATH)
        if owner is not None:
            name, roots = owner
            raise PublishError(
                "push",
                f"OPA at {opa_url} loaded bundle {name!r}, which owns {CONFIG_PATH} "
                f"(roots {roots}); OPA refuses Data API writes there. Publish a bundle "
                "instead (pygate bundle build), or push to an OPA started without one "
                "(pygate sidecar up --writable)",
            )
        document = new if replace else {**_current_config(client), **new}
        validate_policy_data(document)
        # OPA reaches policies through the index and trusts what pygate checked (checked)
        document = with_checked(with_index(document))
        try:
            client.update_or_create_data(document, CONFIG_PATH)
        except RegoParseError as exc:
            raise PublishError("push", f"OPA at {opa_url} refused the data: {exc}") from exc
        return _current_config(client)


def list_loaded(opa_url: str, *, timeout: float = 5.0) -> Loaded:
    """What a running OPA has loaded: Rego modules, bundles (with revisions), policy data.

    Raises:
        PublishError: OPA could not be reached.
        ConfigError: the URL is not ``http(s)://``.
    """
    with _talking_to(opa_url, "list", timeout) as client:
        modules = sorted(client.get_policies_list())
        bundles = _bundles(client)
        config = _current_config(client)
    policies = config.get("declarative_policies", [])
    return Loaded(
        url=opa_url,
        modules=modules,
        bundles=bundles,
        data_keys=sorted(config),
        declarative_policies=[p for p in policies if isinstance(p, dict)]
        if isinstance(policies, list)
        else [],
    )
