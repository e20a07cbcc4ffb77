"""``pygate init``: a policy project that works at once (``opa test``, ``pygate check``,
``pygate bundle build``), with the user's own package under the user's own namespace."""

from __future__ import annotations

import json
import re
from pathlib import Path

from pygate._errors import ConfigError

_NAME = re.compile(r"^[A-Za-z_]\w*$")
_PACKAGE = re.compile(r"^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+$")

_POLICY = """\
# METADATA
# title: {title} policies
# description: >-
#   Refusals for the {service} service. pygate reads this package's deny set
#   because services.{service}.packages in policies/pygate/config/data.json
#   names it. An item of deny is a string (the reason) or a refusal object:
#   reason (internal), message (for the user), hint (for the model), why and
#   would_pass (the failing condition and the change that would pass).
package {package}

# METADATA
# title: Transfer over the payment limit
# description: A transfer may not exceed data.{root}.config.payment_limit.
# custom:
#   id: {prefix}-001
#   action: show_user_limit
#   priority: 20
deny contains refusal if {{
	some transfer in _transfers
	is_number(transfer.amount)
	transfer.amount > _limit
	meta := rego.metadata.rule()
	field := "arguments.amount"
	refusal := {{
		"policy_id": meta.custom.id,
		"title": meta.title,
		"description": meta.description,
		"reason": sprintf("transfer of %v exceeds the limit of %v", [transfer.amount, _limit]),
		"message": sprintf("That is more than you can send at once (the limit is %v).", [_limit]),
		"hint": sprintf("Propose a transfer of at most %v, or ask the user to split it.", [_limit]),
		"why": [{{"field": field, "op": ">", "value": transfer.amount, "bound": _limit}}],
		"would_pass": [{{"field": field, "op": "<=", "bound": _limit}}],
		"action": meta.custom.action,
		"priority": meta.custom.priority,
	}}
}}

# A transfer whose amount is not a number cannot be checked: refuse it.
deny contains "transfer amount must be a number" if {{
	some transfer in _transfers
	not is_number(transfer.amount)
}}

# The transfers in this output. With pygate's library loaded (pygate check, a
# bundle, `opa test $(pygate opa library) policies`), read its canonical
# actions: a transfer sent as an OpenAI, Anthropic or MCP tool call, in a list
# or as "Transfer" is still a transfer. Alone (`opa test policies`), read the
# plain {{"type": "transfer", ...}} shape.
_transfers contains action.arguments if {{
	some action in data.pygate.canonical.actions
	action.name == "transfer"
}}

_transfers contains input.output if {{
	not _canonical_loaded
	input.output.type == "transfer"
}}

_canonical_loaded if data.pygate.canonical.actions

default _limit := 1000

_limit := data.{root}.config.payment_limit
"""

_TEST = """\
package {package}_test

import data.{package}

test_small_transfer_passes if {{
	count({last}.deny) == 0 with input as {{"output": {{"type": "transfer", "amount": 10}}}}
}}

test_large_transfer_refused if {{
	refusals := {last}.deny with input as {{"output": {{"type": "transfer", "amount": 5000}}}}
	some r in refusals
	r.policy_id == "{prefix}-001"
}}

test_amount_must_be_a_number if {{
	refusals := {last}.deny with input as {{"output": {{"type": "transfer", "amount": "5000"}}}}
	"transfer amount must be a number" in refusals
}}
"""

_TOML = """\
# pygate settings for this project; PYGATE_* env vars and command-line flags override them.
# Relative paths are relative to this file.
[pygate]
service = "{service}"
policy_dir = "policies"
audit_db = ".pygate/audit.db"
"""


def scaffold(directory: Path, *, service: str = "payments", package: str = "acme.payments"
             ) -> list[Path]:  # fmt: skip
    """Write a policy project into ``directory`` (new or empty); returns the files written.

    Raises:
        ConfigError: the folder is not empty, or the service or package name is invalid.
    """
    if not _NAME.match(service):
        raise ConfigError(f"service {service!r}: letters, digits and _ only")
    if not _PACKAGE.match(package) or package.split(".")[0] == "pygate":
        raise ConfigError(
            f"package {package!r}: a dotted name in your own namespace, e.g. acme.payments"
        )
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise ConfigError(f"{directory}: exists and is not an empty folder")
    parts = package.split(".")
    names = {
        "service": service,
        "package": package,
        "root": parts[0],
        "last": parts[-1],
        "title": service.capitalize(),
        "prefix": service[:3].upper(),
    }
    pkg_dir = Path("policies", *parts)
    # Services are default deny: every action a service may take is declared with its
    # arguments (README: "Default deny: each service declares its actions").
    transfer = {
        "arguments": {
            "amount": {"type": "number", "required": True, "meaning": "money_amount"},
            "to": {"type": "string", "max_length": 64, "meaning": "recipient"},
        }
    }
    services = {"services": {service: {"packages": [package], "actions": {"transfer": transfer}}}}
    files = {
        Path("pygate.toml"): _TOML.format(**names),
        pkg_dir / "policy.rego": _POLICY.format(**names),
        pkg_dir / "policy_test.rego": _TEST.format(**names),
        Path("policies/pygate/config/data.json"): json.dumps(services, indent=2) + "\n",
        Path("policies", parts[0], "config", "data.json"): json.dumps(
            {"payment_limit": 1000}, indent=2
        )
        + "\n",
        Path("example.json"): json.dumps(
            {
                "output": {"type": "transfer", "amount": 500, "to": "acct-2"},
                "user": {"id": "u1"},
                "context": {"service": service},
            },
            indent=2,
        )
        + "\n",
        Path(".gitignore"): ".pygate/\nkeys/\nbundles/\n",
    }
    written = []
    for rel, text in files.items():
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
