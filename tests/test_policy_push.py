"""`pygate policy push/list`: live data updates of one OPA, and the refusal of a bundle's OPA."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pygate import Gate, LocalOpa, PolicyDataError, PublishError
from pygate.policy._manage import _owner, list_loaded, push_policy_data
from tests.test_cli import pygate

NO_LIMIT = {"id": "nolimit", "role": "analyst", "account_status": "active"}
TRANSFER = {"type": "transfer", "amount": 500, "to": "acct-2"}
CRYPTO_POLICY = {
    "id": "FIN-DATA-900", "set": "finance", "priority": 30, "action": "require_review",
    "reason": "Transfers to acct-9 need review",
    "conditions": [{"type": "field_in", "field": "to", "values": ["acct-9"]}],
}  # fmt: skip


@pytest.fixture
def writable_opa(policy_copy: Path) -> Iterator[LocalOpa]:
    """An OPA that loaded rego/ as plain files (no bundle): its data can be pushed."""
    local = LocalOpa(policy_copy, supervise=False, as_bundle=False).start()
    yield local
    local.stop()


def _write(tmp_path: Path, name: str, doc: object) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


def test_push_changes_the_next_decision(writable_opa: LocalOpa, tmp_path: Path) -> None:
    gate = Gate("finance", opa_url=writable_opa.url, audit=None)
    assert gate.evaluate(TRANSFER, NO_LIMIT).allowed  # default limit 1000
    assert gate.evaluate({**TRANSFER, "to": "acct-9"}, NO_LIMIT).allowed

    lower = _write(tmp_path, "lower.json", {"default_transaction_limit": 100})
    result = pygate("policy", "push", str(lower), "--opa-url", writable_opa.url, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["ok"] is True
    refused = gate.evaluate(TRANSFER, NO_LIMIT)
    assert not refused.allowed
    assert refused.policy_id == "FIN-002"
    assert "100" in refused.reason

    # add a rules-as-data policy; the earlier push is kept (top-level keys replaced)
    current = list_loaded(writable_opa.url).declarative_policies
    more = _write(tmp_path, "more.json", {"declarative_policies": [*current, CRYPTO_POLICY]})
    assert push_policy_data(more, writable_opa.url)["default_transaction_limit"] == 100
    decision = gate.evaluate({"type": "transfer", "amount": 5, "to": "acct-9"}, NO_LIMIT)
    assert decision.policy_id == "FIN-DATA-900"
    assert decision.action == "require_review"
    gate.close()


def test_an_invalid_push_is_refused_and_changes_nothing(
    writable_opa: LocalOpa, tmp_path: Path
) -> None:
    bad = {**CRYPTO_POLICY, "conditions": [{"type": "field_between", "field": "amount"}]}
    path = _write(tmp_path, "bad.json", {"declarative_policies": [bad]})
    before = list_loaded(writable_opa.url)
    result = pygate("policy", "push", str(path), "--opa-url", writable_opa.url)
    assert result.returncode == 2
    assert "policy FIN-DATA-900: conditions[0].type: unknown condition type" in result.stderr
    assert "Traceback" not in result.stderr
    assert list_loaded(writable_opa.url) == before
    with pytest.raises(PolicyDataError):
        push_policy_data(path, writable_opa.url)


def test_the_merged_document_is_validated_too(writable_opa: LocalOpa, tmp_path: Path) -> None:
    # someone wrote a broken policy straight into OPA; a push on top must not bless it
    broken = {**CRYPTO_POLICY, "priority": "high"}
    put = httpx.put(f"{writable_opa.url}/v1/data/pygate/config/declarative_policies",
                    json=[broken])  # fmt: skip
    assert put.status_code == 204
    path = _write(tmp_path, "limit.json", {"default_transaction_limit": 50})
    with pytest.raises(PolicyDataError) as info:
        push_policy_data(path, writable_opa.url)
    assert (info.value.policy_id, info.value.field) == ("FIN-DATA-900", "priority")


def test_replace_makes_the_file_the_whole_document(writable_opa: LocalOpa, tmp_path: Path) -> None:
    only_limit = _write(tmp_path, "limit.json", {"default_transaction_limit": 50})
    loaded = push_policy_data(only_limit, writable_opa.url, replace=True)
    assert loaded == {"default_transaction_limit": 50}
    # an unknown service is then refused (fail closed), not allowed
    with Gate("finance", opa_url=writable_opa.url, audit=None) as gate:
        assert not gate.evaluate(TRANSFER, NO_LIMIT).allowed


def test_push_to_an_opa_that_loaded_a_bundle_is_refused_with_the_reason(
    opa: LocalOpa, tmp_path: Path
) -> None:
    path = _write(tmp_path, "lower.json", {"default_transaction_limit": 100})
    result = pygate("policy", "push", str(path), "--opa-url", opa.url)
    assert result.returncode == 2
    assert "owns pygate/config" in result.stderr
    assert "pygate bundle build" in result.stderr
    as_json = pygate("policy", "push", str(path), "--opa-url", opa.url, "--json")
    assert as_json.returncode == 2
    assert json.loads(as_json.stdout)["step"] == "push"
    with Gate("finance", opa_url=opa.url, audit=None) as gate:
        assert gate.evaluate(TRANSFER, NO_LIMIT).allowed  # nothing changed


@pytest.mark.parametrize(
    ("roots", "owned"),
    [([""], True), (["pygate"], True), (["pygate/config"], True), (None, True),
     (["pygate/other"], False), (["pygatex"], False), (["other"], False)],
)  # fmt: skip
def test_bundle_roots_that_own_the_data_path(roots: list[str] | None, owned: bool) -> None:
    manifest = {} if roots is None else {"roots": roots}
    assert (_owner({"b": {"manifest": manifest}}, "pygate/config") is not None) is owned


def test_push_to_nothing_is_a_clear_error(dead_url: str, tmp_path: Path) -> None:
    path = _write(tmp_path, "lower.json", {"default_transaction_limit": 100})
    with pytest.raises(PublishError, match="did not answer"):
        push_policy_data(path, dead_url)
    result = pygate("policy", "push", str(path), "--opa-url", dead_url)
    assert result.returncode == 2
    assert "did not answer" in result.stderr
    missing = pygate("policy", "push", str(path), env_extra={"PYGATE_OPA_URL": ""})
    assert missing.returncode == 2
    assert "--opa-url: required" in missing.stderr


def test_list_shows_bundles_modules_and_policies(opa: LocalOpa, writable_opa: LocalOpa) -> None:
    bundled = pygate("policy", "list", "--opa-url", opa.url, "--json")
    assert bundled.returncode == 0, bundled.stderr
    doc = json.loads(bundled.stdout)
    assert list(doc["bundles"]) != []
    assert "FIN-DATA-001" in [p["id"] for p in doc["declarative_policies"]]
    assert any(m.endswith("gate.rego") for m in doc["modules"])
    plain = pygate("policy", "list", "--opa-url", writable_opa.url)
    assert plain.returncode == 0, plain.stderr
    assert "no bundle (policy data can be pushed)" in plain.stdout
    assert "FIN-DATA-001" in plain.stdout
