"""The audit keyring and checkpoint store, unit by unit (issue 18: faults mutation testing found).

``pygate.audit._integrity`` holds what makes the chain trustworthy without the database: the
key file's format and permissions, the keyed hashes, where the state folder is, and the only-
forward checkpoint. Each test pins an observable: the exact error (naming the line or the
file), the file modes, the checkpoint's fields, which checkpoint survives a write.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import stat
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import time_machine

from pygate import AuditError, ConfigError
from pygate.audit import _integrity
from pygate.audit._integrity import (
    Checkpoint,
    Integrity,
    Keyring,
    _write_new,
    default_state_dir,
    load_keyring,
    new_key_line,
    rotate_key,
)

A = "ab" * 16  # a 128-bit secret, the shortest accepted
B = "cd" * 32


@pytest.fixture(autouse=True)
def _no_key_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "PYGATE_AUDIT_KEY",
        "PYGATE_AUDIT_KEY_FILE",
        "PYGATE_AUDIT_CHECKPOINT_DIR",
        "PYGATE_STATE_DIR",
    ):
        monkeypatch.delenv(name, raising=False)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- the keyring ---------------------------------------------------------------------------


def test_a_keyring_with_no_key_names_its_source() -> None:
    with pytest.raises(ConfigError, match=r"^audit keyring keys\.txt holds no key$"):
        Keyring({}, "keys.txt")
    with pytest.raises(ConfigError, match=r"^audit keyring  holds no key$"):
        Keyring({})
    with pytest.raises(ConfigError, match="holds no key"):
        Keyring.parse("# only a comment\n\n", "keys.txt")


def test_the_last_key_is_current_and_every_key_is_kept() -> None:
    ring = Keyring({"k1": b"1" * 16, "k2": b"2" * 16, "k3": b"3" * 16}, "src")
    assert ring.current == "k3"
    assert ring.keys == {"k1": b"1" * 16, "k2": b"2" * 16, "k3": b"3" * 16}
    assert ring.source == "src"


def test_parse_reads_lines_commas_colons_comments_and_blank_lines() -> None:
    text = f"# audit keys\n\nk1 {A}\n   \nk2:{B}  # current\n"
    ring = Keyring.parse(text, "f")
    assert ring.keys == {"k1": bytes.fromhex(A), "k2": bytes.fromhex(B)}
    assert ring.current == "k2"
    ring = Keyring.parse(f"k1 {A},k2 {B}")  # PYGATE_AUDIT_KEY's one-line form
    assert list(ring.keys) == ["k1", "k2"]
    ring = Keyring.parse(f"k1 {A} # a # b\n#k2 {B}\n")
    assert list(ring.keys) == ["k1"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"k1 {A}\nk2", "line 2: expected '<key_id> <hex>'"),
        (f"k1 {A}\nk2 {A} extra", "line 2: expected '<key_id> <hex>'"),
        (f"k1 {A}\nk-2 {A}", "line 2: expected '<key_id> <hex>'"),
        (f"k1 {A}\nk2 zz{A}", "line 2: secret is not hex"),
        (f"\nk1 {A[:-2]}", "line 2: secret under 128 bits"),
        (f"k1 {A}\n\nk1 {B}", "line 3: key id k1 repeated"),
    ],
)
def test_a_malformed_line_is_named_by_number(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        Keyring.parse(text, "keys.txt")
    assert str(info.value) == f"audit keyring keys.txt {message}"


def test_a_128_bit_secret_is_enough() -> None:
    ring = Keyring.parse(f"k1 {A}")
    assert ring.keys["k1"] == bytes.fromhex(A)
    assert ring.source == ""  # no source named: messages say nothing of one
    with pytest.raises(ConfigError, match=r"^audit keyring  line 1: secret is not hex$"):
        Keyring.parse("k1 zz")


def test_mac_sign_and_check_are_hmac_sha256_under_the_named_key() -> None:
    ring = Keyring.parse(f"k1 {A}\nk2 {B}")
    want1 = hmac.new(bytes.fromhex(A), b"m", hashlib.sha256).hexdigest()
    want2 = hmac.new(bytes.fromhex(B), b"m", hashlib.sha256).hexdigest()
    assert ring.mac("k1", "m") == want1
    assert ring.mac("k2", "m") == want2
    assert ring.mac("k3", "m") is None
    assert ring.sign("m") == want2  # the current key
    assert ring.check("k1", "m", want1) is True
    assert ring.check("k2", "m", want1) is False
    assert ring.check("k3", "m", want1) is False  # unknown key
    assert ring.check("k1", "n", want1) is False
    assert ring.check("k1", "m", None) is False  # an unsealed row
    assert ring.check("k1", "m", "") is False
    assert ring.check(None, "m", want1) is False
    assert ring.check("", "m", want1) is False


def test_a_new_key_line_is_a_random_8_hex_id_and_a_256_bit_secret() -> None:
    line = new_key_line()
    assert re.fullmatch(r"k[0-9a-f]{8} [0-9a-f]{64}\n", line)
    assert line != new_key_line()
    assert Keyring.parse(line).current == line.split()[0]


# --- the key file --------------------------------------------------------------------------


def test_write_new_creates_a_private_file_once(tmp_path: Path) -> None:
    path = tmp_path / "state" / "deeper" / "audit.key"
    assert _write_new(path, "one\n") is True
    assert path.read_text() == "one\n"
    assert _mode(path) == 0o600
    assert _mode(path.parent) == 0o700
    assert _write_new(path, "two\n") is False  # the first writer won
    assert path.read_text() == "one\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["audit.key"]  # no partial left


def test_write_new_in_an_existing_folder(tmp_path: Path) -> None:
    assert _write_new(tmp_path / "k", "x") is True
    assert (tmp_path / "k").read_text() == "x"


def test_load_keyring_prefers_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYGATE_AUDIT_KEY", f"k7 {A},k8 {B}")
    ring = load_keyring(tmp_path / "missing.key", create=False)
    assert (list(ring.keys), ring.current, ring.source) == (["k7", "k8"], "k8", "PYGATE_AUDIT_KEY")
    assert not (tmp_path / "missing.key").exists()
    monkeypatch.setenv("PYGATE_AUDIT_KEY", "k7")
    with pytest.raises(ConfigError, match=r"^audit keyring PYGATE_AUDIT_KEY line 1: expected"):
        load_keyring(tmp_path / "missing.key", create=True)


def test_load_keyring_creates_reads_or_refuses(tmp_path: Path) -> None:
    path = tmp_path / "s" / "audit.key"
    with pytest.raises(AuditError) as info:
        load_keyring(path, create=False)
    assert str(info.value) == (
        f"audit key file {path} is missing: the chain cannot be verified without its key"
    )
    assert not path.parent.exists()
    ring = load_keyring(path, create=True)
    assert _mode(path) == 0o600
    assert ring.source == str(path)
    assert path.read_text() == f"{ring.current} {ring.keys[ring.current].hex()}\n"
    again = load_keyring(path, create=True)  # an existing file is read, not replaced
    assert again.keys == ring.keys
    path.write_text(f"k1 {A}\nbad\n")
    with pytest.raises(ConfigError, match=rf"^audit keyring {re.escape(str(path))} line 2"):
        load_keyring(path, create=False)


def test_an_unreadable_or_uncreatable_key_file_is_an_audit_error(tmp_path: Path) -> None:
    folder = tmp_path / "a-folder"
    folder.mkdir()
    with pytest.raises(AuditError, match=rf"^cannot read audit key file {re.escape(str(folder))}"):
        load_keyring(folder, create=False)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    path = blocker / "audit.key"  # its folder cannot be made: a file is in the way
    with pytest.raises(AuditError, match=rf"^cannot create audit key file {re.escape(str(path))}"):
        load_keyring(path, create=True)


def test_rotate_key_returns_the_new_current_id(tmp_path: Path) -> None:
    path = tmp_path / "audit.key"
    path.write_text(f"k1 {A}\n")
    new = rotate_key(path)
    ring = Keyring.parse(path.read_text())
    assert list(ring.keys) == ["k1", new]
    assert ring.current == new
    assert re.fullmatch(r"k[0-9a-f]{8}", new)


# --- where the state lives -----------------------------------------------------------------


def test_default_state_dir_of_sqlite_targets(tmp_path: Path) -> None:
    assert default_state_dir(f"{tmp_path}/a.db") == tmp_path / "a.db.state"
    assert default_state_dir(f"sqlite:///{tmp_path}/b.db") == tmp_path / "b.db.state"
    assert default_state_dir("rel/c.db") == Path("rel/c.db.state")


def test_default_state_dir_of_a_database_url_names_the_chain_not_the_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def expect(name: str) -> Path:
        return tmp_path / f"postgres-{hashlib.sha256(name.encode()).hexdigest()[:16]}"

    monkeypatch.setenv("PYGATE_STATE_DIR", str(tmp_path))
    url = "postgresql://me:secret@db.example:5433/audit?options=-csearch_path%3Dx"
    assert default_state_dir(url) == expect("db.example:5433/audit?options=-csearch_path%3Dx")
    other = "postgresql://me:other@db.example:5433/audit?options=-csearch_path%3Dx"
    assert default_state_dir(other) == default_state_dir(url)  # the password is not in it
    assert default_state_dir("postgres://db.example/audit") == expect("db.example:None/audit?")
    monkeypatch.delenv("PYGATE_STATE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_state_dir("postgres://db.example/audit") == (
        tmp_path / "home/.local/state/pygate" / expect("db.example:None/audit?").name
    )


# --- the store: keys, links and seals ------------------------------------------------------


def test_integrity_defaults_to_the_state_folder(tmp_path: Path) -> None:
    integrity = Integrity(str(tmp_path / "a.db"))
    state = tmp_path / "a.db.state"
    assert integrity.key_file == state / "audit.key"
    assert integrity.checkpoint_path == state / "checkpoint.json"
    assert (integrity.every, integrity.seconds) == (100, 10.0)
    assert _mode(state) == 0o700
    assert _mode(state / "audit.key") == 0o600


def test_integrity_takes_arguments_then_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "k1").write_text(f"k1 {A}\n")
    (tmp_path / "k2").write_text(f"k2 {B}\n")
    monkeypatch.setenv("PYGATE_AUDIT_KEY_FILE", str(tmp_path / "k2"))
    monkeypatch.setenv("PYGATE_AUDIT_CHECKPOINT_DIR", str(tmp_path / "cp-env"))
    integrity = Integrity(str(tmp_path / "a.db"), checkpoint_every=3, checkpoint_seconds=0.5)
    assert (integrity.key_file, integrity.keyring.current) == (tmp_path / "k2", "k2")
    assert integrity.checkpoint_path == tmp_path / "cp-env" / "checkpoint.json"
    assert (integrity.every, integrity.seconds) == (3, 0.5)
    integrity = Integrity(
        str(tmp_path / "a.db"), key_file=tmp_path / "k1", checkpoint_dir=tmp_path / "cp"
    )
    assert (integrity.key_file, integrity.keyring.current) == (tmp_path / "k1", "k1")
    assert integrity.checkpoint_path == tmp_path / "cp" / "checkpoint.json"
    assert not (tmp_path / "a.db.state").exists()


def test_link_and_seal_are_keyed_over_the_exact_message(tmp_path: Path) -> None:
    (tmp_path / "k").write_text(f"k1 {A}\nk2 {B}\n")
    integrity = Integrity(str(tmp_path / "a.db"), key_file=tmp_path / "k")
    key_id, digest = integrity.link("prev", '{"a":1}')
    assert key_id == "k2"
    assert digest == hmac.new(bytes.fromhex(B), b'prev|k2|{"a":1}', hashlib.sha256).hexdigest()
    assert integrity.check_link("prev", "k2", '{"a":1}', digest) is True
    assert integrity.check_link("prev", "k1", '{"a":1}', digest) is False
    assert integrity.check_link("prev", None, '{"a":1}', digest) is False
    assert integrity.check_link("other", "k2", '{"a":1}', digest) is False
    old = hmac.new(bytes.fromhex(A), b'prev|k1|{"a":1}', hashlib.sha256).hexdigest()
    assert integrity.check_link("prev", "k1", '{"a":1}', old) is True  # a rotated-out key
    fields = ["u", 1, None, {"n": 2}]
    key_id, mac = integrity.seal("quota", fields)
    assert key_id == "k2"
    message = b'quota|k2|["u",1,null,{"n":2}]'  # compact JSON, the one canonical form
    assert mac == hmac.new(bytes.fromhex(B), message, hashlib.sha256).hexdigest()
    assert integrity.check_seal("quota", fields, "k2", mac) is True
    assert integrity.check_seal("quota", fields, "k1", mac) is False
    assert integrity.check_seal("quota", fields, "k2", None) is False
    old_mac = hmac.new(bytes.fromhex(A), message.replace(b"k2", b"k1"), hashlib.sha256)
    assert integrity.check_seal("quota", fields, "k1", old_mac.hexdigest()) is True


# --- when a checkpoint is due --------------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _Clock:
    fake = _Clock()
    monkeypatch.setattr(_integrity, "time", SimpleNamespace(monotonic=fake.monotonic))
    return fake


def _store(tmp_path: Path, every: int = 3, seconds: float = 10.0) -> Integrity:
    (tmp_path / "k").write_text(f"k1 {A}\n")
    return Integrity(
        str(tmp_path / "a.db"),
        key_file=tmp_path / "k",
        checkpoint_every=every,
        checkpoint_seconds=seconds,
    )


HEAD = {"seq": 5, "head_hash": "h5", "count": 5, "anchor_no": 0, "anchor_hash": "g"}


def _never(old: Checkpoint) -> bool:
    raise AssertionError("extends() must not be asked")


def test_the_first_commit_is_due_then_every_nth_record(tmp_path: Path, clock: _Clock) -> None:
    integrity = _store(tmp_path, every=3, seconds=0)
    assert integrity.has_pending() is False
    assert integrity.due(0) is False  # nothing added: never due, not even the first time
    assert integrity.due(1) is True  # this handle's first commit
    assert integrity.has_pending() is True
    integrity.write_checkpoint(HEAD, _never)
    assert integrity.has_pending() is False
    assert integrity.due(1) is False
    assert integrity.due(1) is False
    assert integrity.has_pending() is True
    assert integrity.due(1) is True  # the third since the checkpoint
    assert integrity.due(0) is True  # still pending
    integrity.write_checkpoint({**HEAD, "seq": 8, "head_hash": "h8"}, lambda old: True)
    assert integrity.due(2) is False
    assert integrity.due(5) is True


def test_a_checkpoint_is_due_after_the_interval(tmp_path: Path, clock: _Clock) -> None:
    integrity = _store(tmp_path, every=0, seconds=10.0)
    integrity.write_checkpoint(HEAD, _never)
    clock.now += 9.5
    assert integrity.due(1) is False  # count 0: never by count
    clock.now += 0.5
    assert integrity.due(0) is True  # exactly the interval
    integrity.write_checkpoint({**HEAD, "seq": 6, "head_hash": "h6"}, lambda old: True)
    assert integrity.due(1) is False  # the interval restarts at the write
    (tmp_path / "idle").mkdir()
    idle = _store(tmp_path / "idle", every=0, seconds=0)
    idle.write_checkpoint(HEAD, _never)
    clock.now += 1e6
    assert idle.due(10**6) is False  # neither by count nor by time


def test_a_sub_second_interval(tmp_path: Path, clock: _Clock) -> None:
    integrity = _store(tmp_path, every=0, seconds=0.5)
    integrity.write_checkpoint(HEAD, _never)
    clock.now += 0.25
    assert integrity.due(1) is False
    clock.now += 0.25
    assert integrity.due(1) is True


def test_by_count_exactly_at_the_threshold(tmp_path: Path, clock: _Clock) -> None:
    integrity = _store(tmp_path, every=1, seconds=0)
    integrity.write_checkpoint(HEAD, _never)
    assert integrity.due(1) is True


# --- reading and writing checkpoints -------------------------------------------------------


def test_a_checkpoint_body_is_canonical_json_of_every_signed_field() -> None:
    cp = Checkpoint(7, "h", 6, 1, "a", "2025-01-01T00:00:00+00:00", "k1", mac="m")
    assert cp.body() == 'checkpoint|[7,"h",6,1,"a","2025-01-01T00:00:00+00:00","k1"]'


@time_machine.travel(datetime(2025, 6, 30, 12, 0, 1, 5, tzinfo=UTC), tick=False)
def test_write_checkpoint_signs_and_stores_every_field(tmp_path: Path, clock: _Clock) -> None:
    integrity = _store(tmp_path)
    assert integrity.read_checkpoint() is None
    head: dict[str, Any] = {"seq": 5, "head_hash": "h5", "count": 4, "anchor_no": 2}
    head["anchor_hash"] = "a2"
    cp = integrity.write_checkpoint(head, _never)
    assert cp == Checkpoint(
        seq=5,
        head_hash="h5",
        count=4,
        anchor_no=2,
        anchor_hash="a2",
        at="2025-06-30T12:00:01.000005+00:00",
        key_id="k1",
        mac=hmac.new(bytes.fromhex(A), cp.body().encode(), hashlib.sha256).hexdigest(),
    )
    assert integrity.read_checkpoint() == cp
    assert integrity.checkpoint_ok(cp) is True
    assert json.loads(integrity.checkpoint_path.read_text()) == cp.__dict__
    assert _mode(integrity.checkpoint_path) == 0o600
    assert _mode(integrity.checkpoint_path.parent) == 0o700
    assert sorted(p.name for p in integrity.checkpoint_path.parent.iterdir()) == [
        ".checkpoint.json.lock",
        "checkpoint.json",
    ]
    assert integrity.checkpoint_ok(Checkpoint(**{**cp.__dict__, "count": 3})) is False
    assert integrity.checkpoint_ok(Checkpoint(**{**cp.__dict__, "key_id": "k9"})) is False


def test_checkpoints_only_move_forward(tmp_path: Path, clock: _Clock) -> None:
    integrity = _store(tmp_path)
    first = integrity.write_checkpoint(HEAD, _never)
    assert first is not None
    asked: list[Checkpoint] = []

    def extends(old: Checkpoint) -> bool:
        asked.append(old)
        return False

    # an older head, or the same head again: the stored one stays, extends() not asked
    assert integrity.write_checkpoint({**HEAD, "seq": 4, "head_hash": "h4"}, _never) is None
    assert integrity.write_checkpoint({**HEAD, "count": 9}, _never) is None
    # a newer head that does not extend the stored one: kept as evidence
    assert integrity.write_checkpoint({**HEAD, "seq": 6, "head_hash": "h6"}, extends) is None
    assert asked == [first]
    # the same seq with another hash is not "the same head": extends() decides
    assert integrity.write_checkpoint({**HEAD, "head_hash": "x5"}, extends) is None
    assert asked == [first, first]
    assert integrity.read_checkpoint() == first
    same_seq = integrity.write_checkpoint({**HEAD, "head_hash": "x5"}, lambda old: True)
    assert same_seq is not None
    assert (same_seq.seq, same_seq.head_hash) == (5, "x5")
    newer = integrity.write_checkpoint({**HEAD, "seq": 6, "head_hash": "h6"}, lambda old: True)
    assert newer is not None
    assert integrity.read_checkpoint() == newer


def test_a_forged_or_unreadable_checkpoint_is_replaced_without_asking(
    tmp_path: Path, clock: _Clock
) -> None:
    integrity = _store(tmp_path)
    first = integrity.write_checkpoint({**HEAD, "seq": 9, "head_hash": "h9"}, _never)
    assert first is not None
    forged = {**first.__dict__, "mac": "00" * 32}
    integrity.checkpoint_path.write_text(json.dumps(forged))
    cp = integrity.write_checkpoint(HEAD, _never)  # older than the forged one: still written
    assert cp is not None
    assert integrity.read_checkpoint() == cp
    integrity.checkpoint_path.write_text("{not json")
    assert integrity.write_checkpoint(HEAD, _never) is not None


def test_a_stale_partial_file_does_not_corrupt_the_checkpoint(
    tmp_path: Path, clock: _Clock
) -> None:
    integrity = _store(tmp_path)
    folder = integrity.checkpoint_path.parent
    folder.mkdir(parents=True)
    (folder / f".checkpoint.json.{os.getpid()}").write_text("x" * 10_000)  # a crashed writer's
    cp = integrity.write_checkpoint(HEAD, _never)
    assert integrity.read_checkpoint() == cp


def test_read_checkpoint_names_the_file_it_cannot_use(tmp_path: Path) -> None:
    integrity = _store(tmp_path)
    path = integrity.checkpoint_path
    path.parent.mkdir(parents=True)
    where = re.escape(str(path))
    path.write_text("{not json")
    with pytest.raises(AuditError, match=rf"^checkpoint {where} is malformed: "):
        integrity.read_checkpoint()
    path.write_text(json.dumps({"seq": 1}))
    with pytest.raises(AuditError, match=rf"^checkpoint {where} is malformed: 'head_hash'"):
        integrity.read_checkpoint()
    path.write_text("[1, 2]")
    with pytest.raises(AuditError, match=rf"^checkpoint {where} is malformed: .*indices"):
        integrity.read_checkpoint()
    path.unlink()
    path.mkdir()
    with pytest.raises(AuditError, match=rf"^cannot read checkpoint {where}: "):
        integrity.read_checkpoint()
