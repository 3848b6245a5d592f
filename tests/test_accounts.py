"""Accounts, API keys, the session secret and the audit log, on real files."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest

from core.access.accounts import (ACTIONS, KEY_PREFIX, ROLES, AccountsError, AccountStore, allowed, bootstrap_admin,
                           check_password, hash_password, secret_key)
from core.access.audit import MAX_FIELD, AuditLog
from tests.conftest import ROOT

PASSWORD = "correct horse"


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def store(tmp_path):
    return AccountStore(tmp_path)


# ---------------------------------------------------------------------- roles
def test_roles_are_ordered_and_actions_need_the_least_role():
    assert ROLES == ("viewer", "analyst", "admin")
    assert not allowed("viewer", "rename") and allowed("analyst", "rename") and allowed("admin", "rename")
    assert not allowed("analyst", "activate") and allowed("admin", "activate")
    assert not allowed(None, "rename") and not allowed("root", "rename")
    assert not allowed("analyst", "no-such-action") and allowed("admin", "no-such-action")
    for action, least in ACTIONS.items():
        assert [allowed(r, action) for r in ROLES] == [ROLES.index(r) >= ROLES.index(least) for r in ROLES]


# ---------------------------------------------------------------------- passwords
def test_hash_format_and_werkzeug_accepts_it():
    from werkzeug.security import check_password_hash, generate_password_hash

    pwhash = hash_password(PASSWORD)
    method, salt, digest = pwhash.split("$")
    assert method == "scrypt:32768:8:1" and len(salt) == 16 and salt.isalnum()
    assert len(digest) == 128 and int(digest, 16) >= 0
    assert check_password_hash(pwhash, PASSWORD) and not check_password_hash(pwhash, PASSWORD + "!")
    assert hash_password(PASSWORD) != pwhash  # salted
    # and the other way round: a hash werkzeug made is accepted here
    theirs = generate_password_hash(PASSWORD, method="scrypt")
    assert check_password(theirs, PASSWORD) and not check_password(theirs, "wrong password")


def test_check_password_refuses_foreign_and_absurd_hashes():
    assert not check_password("pbkdf2:sha256:1000$salt$abcd", PASSWORD)
    assert not check_password("not a hash", PASSWORD)
    assert not check_password("scrypt:1073741824:8:1$salt$00", PASSWORD)  # would allocate 1 TiB
    assert not check_password("scrypt:1000:8:1$salt$00", PASSWORD)  # N not a power of two


def test_users_add_authenticate_list_and_never_expose_hashes(store, tmp_path):
    assert not store.has_users() and store.users() == []
    created = store.add_user("alice", "admin", PASSWORD)
    assert created["name"] == "alice" and created["role"] == "admin" and created["created"].endswith("Z")
    store.add_user("bob.smith-2", "viewer", "another password")
    assert store.has_users()
    assert store.authenticate("alice", PASSWORD) == {"name": "alice", "role": "admin"}
    assert store.authenticate("alice", "wrong password") is None
    assert store.authenticate("nobody", PASSWORD) is None
    assert store.authenticate("bob.smith-2", PASSWORD) is None
    assert store.authenticate(None, PASSWORD) is None and store.authenticate("alice", None) is None
    listed = store.users()
    assert [(u["name"], u["role"]) for u in listed] == [("alice", "admin"), ("bob.smith-2", "viewer")]
    assert all(set(u) == {"name", "role", "created"} for u in listed)
    assert store.get_user("alice") == listed[0] and store.get_user("carol") is None
    on_disk = json.loads((tmp_path / "users.json").read_text())
    assert on_disk["users"]["alice"]["password"].startswith("scrypt:32768:8:1$")
    assert PASSWORD not in (tmp_path / "users.json").read_text()
    assert mode(tmp_path / "users.json") == 0o600


def test_unknown_user_still_runs_the_kdf(store, monkeypatch):
    import core.access.accounts as accounts

    store.add_user("alice", "admin", PASSWORD)
    calls = []
    real = accounts.check_password
    monkeypatch.setattr(accounts, "check_password", lambda h, p: calls.append(h) or real(h, p))
    assert store.authenticate("mallory", PASSWORD) is None
    assert len(calls) == 1 and calls[0].startswith("scrypt:32768:8:1$")


@pytest.mark.parametrize("name, role, password, message", [
    ("", "viewer", PASSWORD, "not valid"),
    ("a b", "viewer", PASSWORD, "not valid"),
    ("x" * 65, "viewer", PASSWORD, "not valid"),
    ("<script>", "viewer", PASSWORD, "not valid"),
    ("carol", "boss", PASSWORD, "unknown role 'boss'"),
    ("carol", "viewer", "", "empty"),
    ("carol", "viewer", "seven77", "at least 8"),
    ("alice", "viewer", PASSWORD, "already exists"),
    ("ALICE", "viewer", PASSWORD, "'alice' already exists"),
])
def test_add_user_rejects_bad_input_with_a_clear_message(store, name, role, password, message):
    store.add_user("alice", "admin", PASSWORD)
    with pytest.raises(ValueError, match=message):
        store.add_user(name, role, password)
    assert [u["name"] for u in store.users()] == ["alice"]


def test_set_role_remove_and_the_last_admin(store):
    store.add_user("alice", "admin", PASSWORD)
    store.add_user("bob", "viewer", PASSWORD)
    assert store.set_role("bob", "analyst") == "viewer"
    assert store.authenticate("bob", PASSWORD)["role"] == "analyst"
    with pytest.raises(ValueError, match="last admin"):
        store.set_role("alice", "viewer")
    with pytest.raises(ValueError, match="last admin"):
        store.remove_user("alice")
    with pytest.raises(ValueError, match="unknown role"):
        store.set_role("bob", "owner")
    with pytest.raises(ValueError, match="no user named 'zed'"):
        store.set_role("zed", "admin")
    with pytest.raises(ValueError, match="no user named 'zed'"):
        store.remove_user("zed")
    store.remove_user("bob")
    assert store.authenticate("bob", PASSWORD) is None
    store.remove_user("alice")  # the only user: back to no sign-in
    assert not store.has_users()


def test_a_change_by_another_process_is_seen(store, tmp_path):
    assert not store.has_users()  # cached as absent
    other = AccountStore(tmp_path)
    other.add_user("alice", "admin", PASSWORD)
    assert store.has_users() and store.get_user("alice")["role"] == "admin"
    other.set_role("alice", "admin")
    other.add_user("bob", "viewer", PASSWORD)
    other.set_role("bob", "analyst")
    assert store.get_user("bob")["role"] == "analyst"


# ---------------------------------------------------------------------- API keys
def test_key_create_verify_revoke_and_hash_only_storage(store, tmp_path):
    assert not store.has_keys() and store.verify_key("slk_anything") is None
    key = store.create_key("crm-sync", "analyst")
    assert key.startswith(KEY_PREFIX) and len(key) >= 40
    assert store.has_keys()
    assert store.verify_key(key) == {"name": "crm-sync", "role": "analyst"}
    assert store.verify_key(key + "x") is None and store.verify_key(key[:-1]) is None
    assert store.verify_key("") is None and store.verify_key(None) is None and store.verify_key(key[4:]) is None
    text = (tmp_path / "apikeys.json").read_text()
    assert key not in text and key[len(KEY_PREFIX) + 6:] not in text
    import hashlib
    entry = json.loads(text)["keys"]["crm-sync"]
    assert entry["sha256"] == hashlib.sha256(key.encode()).hexdigest()
    assert mode(tmp_path / "apikeys.json") == 0o600
    listed = store.keys()
    assert listed == [{"name": "crm-sync", "role": "analyst", "prefix": key[:10], "created": entry["created"]}]
    second = store.create_key("ops", "admin")
    assert second != key and store.verify_key(second)["role"] == "admin"
    with pytest.raises(ValueError, match="already exists"):
        store.create_key("ops", "viewer")
    with pytest.raises(ValueError, match="unknown role"):
        store.create_key("x", "root")
    with pytest.raises(ValueError, match="not valid"):
        store.create_key("has space", "viewer")
    store.revoke_key("crm-sync")
    assert store.verify_key(key) is None and store.verify_key(second)["name"] == "ops"
    with pytest.raises(ValueError, match="no API key named 'crm-sync'"):
        store.revoke_key("crm-sync")
    store.revoke_key("ops")
    assert not store.has_keys()


def test_key_revoked_by_another_process_is_refused_at_once(store, tmp_path):
    key = store.create_key("etl", "viewer")
    assert store.verify_key(key)
    subprocess.run([sys.executable, "-c", "import sys; from core.access.accounts import AccountStore; "
                    "AccountStore(sys.argv[1]).revoke_key('etl')", str(tmp_path)], cwd=ROOT, check=True)
    assert store.verify_key(key) is None and not store.has_keys()


def test_verify_key_returns_a_copy(store):
    key = store.create_key("etl", "viewer")
    store.verify_key(key)["role"] = "admin"
    assert store.verify_key(key)["role"] == "viewer"


# ---------------------------------------------------------------------- malformed files
@pytest.mark.parametrize("filename, content, message", [
    ("users.json", "{not json", "not valid JSON"),
    ("users.json", "[]", "not a users file"),
    ("users.json", '{"users": {"alice": {"role": "god", "password": "x"}}}', "user 'alice' is malformed"),
    ("users.json", '{"format": 9, "users": {}}', "format 9"),
    ("apikeys.json", "", "not valid JSON"),
    ("apikeys.json", '{"keys": {"etl": {"role": "viewer", "sha256": "abc"}}}', "API key 'etl' is malformed"),
    ("apikeys.json", '{"keys": 3}', "not an API keys file"),
])
def test_malformed_files_give_one_line_naming_the_file(store, tmp_path, filename, content, message):
    (tmp_path / filename).write_text(content)
    calls = ([store.has_users, store.users, lambda: store.authenticate("alice", PASSWORD),
              lambda: store.add_user("bob", "viewer", PASSWORD)] if filename == "users.json" else
             [store.has_keys, store.keys, lambda: store.verify_key("slk_x"), lambda: store.create_key("b", "viewer")])
    for call in calls:
        with pytest.raises(AccountsError, match=message) as info:
            call()
        text = str(info.value)
        assert str(tmp_path / filename) in text and "\n" not in text
    assert (tmp_path / filename).read_text() == content  # never overwritten


# ---------------------------------------------------------------------- secret key
def test_secret_key_is_created_once_0600_and_stable_across_processes(tmp_path, monkeypatch):
    monkeypatch.delenv("SEGMENTLENS_SECRET_KEY", raising=False)
    first = secret_key(tmp_path)
    assert len(first) == 32 and secret_key(tmp_path) == first
    assert mode(tmp_path / "secret_key") == 0o600
    code = "import sys; from core.access.accounts import secret_key; print(secret_key(sys.argv[1]).hex())"
    env = {k: v for k, v in os.environ.items() if k != "SEGMENTLENS_SECRET_KEY"}
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=ROOT, env=env, capture_output=True,
                         text=True, check=True).stdout.strip()
    assert bytes.fromhex(out) == first
    assert [p.name for p in tmp_path.iterdir()] == ["secret_key"]  # no temporary files left


def test_secret_key_race_between_processes_gives_one_key(tmp_path):
    code = "import sys; from core.access.accounts import secret_key; print(secret_key(sys.argv[1]).hex())"
    env = {k: v for k, v in os.environ.items() if k != "SEGMENTLENS_SECRET_KEY"}
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "fresh")], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, text=True) for _ in range(4)]
    keys = {p.communicate(timeout=60)[0].strip() for p in procs}
    assert len(keys) == 1 and bytes.fromhex(keys.pop()) == (tmp_path / "fresh" / "secret_key").read_bytes()


def test_secret_key_from_the_environment_and_a_damaged_file(tmp_path, monkeypatch):
    monkeypatch.setenv("SEGMENTLENS_SECRET_KEY", "from-the-environment")
    assert secret_key(tmp_path) == b"from-the-environment" and not (tmp_path / "secret_key").exists()
    monkeypatch.delenv("SEGMENTLENS_SECRET_KEY")
    (tmp_path / "secret_key").write_bytes(b"short")
    with pytest.raises(AccountsError, match="damaged .5 bytes, expected 32"):
        secret_key(tmp_path)


# ---------------------------------------------------------------------- bootstrap
def test_bootstrap_admin(store, monkeypatch):
    monkeypatch.delenv("SEGMENTLENS_ADMIN_USER", raising=False)
    monkeypatch.delenv("SEGMENTLENS_ADMIN_PASSWORD", raising=False)
    assert bootstrap_admin(store) is None and not store.has_users()
    monkeypatch.setenv("SEGMENTLENS_ADMIN_PASSWORD", "short")
    with pytest.raises(AccountsError, match="SEGMENTLENS_ADMIN_PASSWORD: the password is too short"):
        bootstrap_admin(store)
    monkeypatch.setenv("SEGMENTLENS_ADMIN_PASSWORD", PASSWORD)
    assert bootstrap_admin(store) == "admin"
    assert store.authenticate("admin", PASSWORD) == {"name": "admin", "role": "admin"}
    monkeypatch.setenv("SEGMENTLENS_ADMIN_USER", "root2")
    assert bootstrap_admin(store) is None  # users exist: nothing changes
    assert [u["name"] for u in store.users()] == ["admin"]


def test_bootstrap_admin_with_a_chosen_name(store, monkeypatch):
    monkeypatch.setenv("SEGMENTLENS_ADMIN_PASSWORD", PASSWORD)
    monkeypatch.setenv("SEGMENTLENS_ADMIN_USER", "ops.lead")
    assert bootstrap_admin(store) == "ops.lead"
    assert store.get_user("ops.lead")["role"] == "admin"


# ---------------------------------------------------------------------- audit log
def test_audit_append_and_entries(tmp_path):
    log = AuditLog(tmp_path)
    assert log.entries() == [] and log.entries(limit=3) == []
    first = log.append("alice", "activate", "v0002", "ok")
    log.append("bob", "rename", "segment 1", "denied", "viewer may not rename")
    entries = log.entries()
    assert entries[0] == first
    assert [(e["user"], e["action"], e["target"], e["outcome"], e["detail"]) for e in entries] == [
        ("alice", "activate", "v0002", "ok", ""), ("bob", "rename", "segment 1", "denied", "viewer may not rename")]
    assert first["time"].endswith("Z") and first["time"][:4].isdigit()
    assert log.entries(limit=1) == entries[1:] and log.entries(limit=0) == []
    assert mode(tmp_path / "audit.log") == 0o600


def test_audit_is_append_only_one_line_each_and_capped(tmp_path):
    log = AuditLog(tmp_path)
    log.append("alice", "rename", "segment 2", "ok", "first")
    before = (tmp_path / "audit.log").read_bytes()
    log.append("eve\nforged line", "rename", "x" * 100_000, "ok", "<b>\u2028\udcff</b>")
    raw = (tmp_path / "audit.log").read_bytes()
    assert raw.startswith(before) and raw.count(b"\n") == 2
    last = log.entries()[-1]
    assert last["user"] == "eve\nforged line" and len(last["target"]) == MAX_FIELD
    assert last["target"].endswith("…") and last["detail"].startswith("<b>")
    assert len(raw) < 4 * MAX_FIELD + 500


def test_audit_torn_last_line_is_skipped_and_the_next_entry_survives(tmp_path):
    log = AuditLog(tmp_path)
    log.append("alice", "upload", "file.csv", "ok")
    with open(tmp_path / "audit.log", "ab") as fh:
        fh.write(b'{"time": "2026-12-01T10:00:00Z", "user": "bo')  # a crash mid-write
    assert [e["user"] for e in log.entries()] == ["alice"]
    log.append("carol", "retrain", "v0002", "ok")
    assert [e["user"] for e in log.entries()] == ["alice", "carol"]
    assert [e["user"] for e in log.entries(limit=1)] == ["carol"]


def test_audit_limit_reads_from_the_end_of_a_long_log(tmp_path):
    log = AuditLog(tmp_path)
    for i in range(400):
        log.append("u", "rename", f"target {i}", "ok", "d" * 400)
    assert (tmp_path / "audit.log").stat().st_size > 65536 * 2
    assert [e["target"] for e in log.entries(limit=3)] == ["target 397", "target 398", "target 399"]
    assert len(log.entries(limit=250)) == 250 and log.entries(limit=250)[0]["target"] == "target 150"
    assert len(log.entries()) == 400 and len(log.entries(limit=1000)) == 400


def test_audit_appends_from_concurrent_processes_never_interleave(tmp_path):
    code = ("import sys; from core.access.audit import AuditLog; log = AuditLog(sys.argv[1])\n"
            "for i in range(50): log.append(sys.argv[2], 'rename', str(i), 'ok', 'x' * 300)")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path), f"p{n}"], cwd=ROOT) for n in range(3)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    entries = AuditLog(tmp_path).entries()
    assert len(entries) == 150
    for n in range(3):
        assert [e["target"] for e in entries if e["user"] == f"p{n}"] == [str(i) for i in range(50)]
