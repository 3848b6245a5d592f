"""`python -m core users|apikeys|audit` as an operator runs them: real processes, files, exit codes."""
from __future__ import annotations

import getpass
import json
import os
import subprocess
import sys

import pytest

from core.access.accounts import AccountStore
from core.access.audit import AuditLog
from tests.conftest import ROOT

PASSWORD = "correct horse"


def run(*args, models=None, stdin: str | None = None, check: int | None = None, env_models=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGMENTLENS_")}
    if env_models is not None:
        env["SEGMENTLENS_MODELS"] = str(env_models)
    argv = [sys.executable, "-m", "core", *args] + (["--models", str(models)] if models is not None else [])
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, env=env, timeout=120,
                          input=stdin if stdin is not None else "", )
    if check is not None:
        assert proc.returncode == check, (proc.stdout, proc.stderr)
    return proc


def one_line_error(proc, text: str) -> None:
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and text in lines[0], proc.stderr


def cli_user() -> str:
    return f"cli:{getpass.getuser()}"


def test_help_for_every_access_command():
    for cmd in (["users"], ["users", "add"], ["users", "list"], ["users", "remove"], ["users", "set-role"],
                ["apikeys"], ["apikeys", "create"], ["apikeys", "list"], ["apikeys", "revoke"], ["audit"]):
        proc = run(*cmd, "--help", check=0)
        assert "usage: python -m core " + " ".join(cmd) in proc.stdout


def test_users_round_trip_with_password_stdin(tmp_path):
    proc = run("users", "add", "alice", "--role", "admin", "--password-stdin", models=tmp_path,
               stdin=PASSWORD + "\n", check=0)
    assert "alice" in proc.stdout and "admin" in proc.stdout
    run("users", "add", "bob", "--role", "viewer", "--password-stdin", models=tmp_path,
        stdin="bob's password\r\n", check=0)
    store = AccountStore(tmp_path)
    assert store.authenticate("alice", PASSWORD) == {"name": "alice", "role": "admin"}
    assert store.authenticate("bob", "bob's password")["role"] == "viewer"  # CRLF stripped, spaces kept
    listed = json.loads(run("users", "list", "--json", models=tmp_path, check=0).stdout)
    assert [(u["name"], u["role"]) for u in listed] == [("alice", "admin"), ("bob", "viewer")]
    assert all(set(u) == {"name", "role", "created"} for u in listed)
    text = run("users", "list", models=tmp_path, check=0).stdout
    assert text.splitlines()[0].split() == ["name", "role", "created"] and "scrypt" not in text
    assert "viewer -> analyst" in run("users", "set-role", "bob", "analyst", models=tmp_path, check=0).stdout
    assert AccountStore(tmp_path).get_user("bob")["role"] == "analyst"
    run("users", "remove", "bob", models=tmp_path, check=0)
    assert [u["name"] for u in AccountStore(tmp_path).users()] == ["alice"]
    log = AuditLog(tmp_path).entries()
    assert [(e["action"], e["target"], e["outcome"]) for e in log] == [
        ("user-add", "alice", "ok"), ("user-add", "bob", "ok"), ("user-set-role", "bob", "ok"),
        ("user-remove", "bob", "ok")]
    assert {e["user"] for e in log} == {cli_user()}
    assert PASSWORD not in (tmp_path / "audit.log").read_text()


def test_models_folder_from_the_environment(tmp_path):
    run("users", "add", "carol", "--role", "analyst", "--password-stdin", env_models=tmp_path, stdin=PASSWORD, check=0)
    assert AccountStore(tmp_path).get_user("carol")["role"] == "analyst"
    assert "carol" in run("users", "list", env_models=tmp_path, check=0).stdout


def test_empty_listings_say_so(tmp_path):
    assert "no users" in run("users", "list", models=tmp_path, check=0).stdout
    assert json.loads(run("users", "list", "--json", models=tmp_path, check=0).stdout) == []
    assert "no API keys" in run("apikeys", "list", models=tmp_path, check=0).stdout
    assert "empty" in run("audit", models=tmp_path, check=0).stdout
    assert json.loads(run("audit", "--json", models=tmp_path, check=0).stdout) == []


@pytest.mark.parametrize("args, stdin, message", [
    (["users", "add", "bad name", "--role", "viewer", "--password-stdin"], PASSWORD, "user name 'bad name' is not valid"),
    (["users", "add", "dave", "--role", "boss", "--password-stdin"], PASSWORD, "unknown role 'boss'"),
    (["users", "add", "dave", "--role", "viewer", "--password-stdin"], "short\n", "at least 8 characters"),
    (["users", "add", "dave", "--role", "viewer", "--password-stdin"], "", "the password is empty"),
    (["users", "add", "alice", "--role", "viewer", "--password-stdin"], PASSWORD, "'alice' already exists"),
    (["users", "add", "dave", "--role", "viewer"], PASSWORD, "--password-stdin"),
    (["users", "remove", "zed"], "", "no user named 'zed'"),
    (["users", "set-role", "zed", "admin"], "", "no user named 'zed'"),
    (["users", "set-role", "alice", "viewer"], "", "last admin"),
    (["users", "set-role", "alice", "root"], "", "unknown role 'root'"),
    (["apikeys", "create", "--name", "etl", "--role", "boss"], "", "unknown role 'boss'"),
    (["apikeys", "create", "--name", "e t l", "--role", "viewer"], "", "API key name 'e t l' is not valid"),
    (["apikeys", "revoke", "nothing"], "", "no API key named 'nothing'"),
])
def test_bad_input_exits_2_with_one_line_and_changes_nothing(tmp_path, args, stdin, message):
    store = AccountStore(tmp_path)
    store.add_user("alice", "admin", PASSWORD)
    store.add_user("bob", "viewer", PASSWORD)
    before = {p.name: p.read_bytes() for p in tmp_path.glob("*.json")}
    proc = run(*args, models=tmp_path, stdin=stdin)
    one_line_error(proc, message)
    assert proc.stdout == ""
    assert {p.name: p.read_bytes() for p in tmp_path.glob("*.json")} == before


def test_a_refused_change_is_audited_as_failed(tmp_path):
    AccountStore(tmp_path).add_user("alice", "admin", PASSWORD)
    run("users", "remove", "zed", models=tmp_path, check=2)
    last = AuditLog(tmp_path).entries()[-1]
    assert (last["action"], last["target"], last["outcome"]) == ("user-remove", "zed", "failed")
    assert "no user named 'zed'" in last["detail"] and last["user"] == cli_user()


def test_argparse_errors_exit_2(tmp_path):
    assert run("users", "add", "dave", models=tmp_path).returncode == 2  # --role missing
    assert run("apikeys", "create", "--role", "viewer", models=tmp_path).returncode == 2  # --name missing
    proc = run("audit", "--limit", "-1", models=tmp_path)
    assert proc.returncode == 2 and "--limit must be at least 0" in proc.stderr


def test_malformed_users_file_is_one_line(tmp_path):
    (tmp_path / "users.json").write_text("{truncated")
    for args in (["users", "list"], ["users", "remove", "alice"]):
        one_line_error(run(*args, models=tmp_path), str(tmp_path / "users.json"))
    (tmp_path / "apikeys.json").write_text('{"keys": []}')
    one_line_error(run("apikeys", "list", models=tmp_path), "not an API keys file")


def test_apikeys_round_trip_prints_the_key_once(tmp_path):
    proc = run("apikeys", "create", "--name", "crm-sync", "--role", "analyst", "--json", models=tmp_path, check=0)
    out = json.loads(proc.stdout)
    assert set(out) == {"key", "name", "role"} and out["name"] == "crm-sync" and out["role"] == "analyst"
    key = out["key"]
    assert AccountStore(tmp_path).verify_key(key) == {"name": "crm-sync", "role": "analyst"}
    proc = run("apikeys", "create", "--name", "ops", "--role", "admin", models=tmp_path, check=0)
    plain = proc.stdout.strip()
    assert plain.startswith("slk_") and "\n" not in plain and "shown only this once" in proc.stderr
    assert AccountStore(tmp_path).verify_key(plain)["role"] == "admin"
    for path in tmp_path.iterdir():
        if path.is_file():
            assert key not in path.read_text(errors="replace") and plain not in path.read_text(errors="replace")
    listed = json.loads(run("apikeys", "list", "--json", models=tmp_path, check=0).stdout)
    assert [(k["name"], k["role"], k["prefix"]) for k in listed] == [("crm-sync", "analyst", key[:10]),
                                                                      ("ops", "admin", plain[:10])]
    table = run("apikeys", "list", models=tmp_path, check=0).stdout
    assert key not in table and key[:10] in table
    run("apikeys", "revoke", "crm-sync", models=tmp_path, check=0)
    assert AccountStore(tmp_path).verify_key(key) is None
    assert [(e["action"], e["target"], e["outcome"]) for e in AuditLog(tmp_path).entries()] == [
        ("key-create", "crm-sync", "ok"), ("key-create", "ops", "ok"), ("key-revoke", "crm-sync", "ok")]


def test_audit_command_table_json_and_limit(tmp_path):
    log = AuditLog(tmp_path)
    log.append("alice", "activate", "v0002", "ok")
    log.append("bob", "rename", "\x1b[31mred\x1b[0m", "denied", "viewer")
    log.append("carol", "upload", "file.csv", "ok")
    everything = json.loads(run("audit", "--json", models=tmp_path, check=0).stdout)
    assert everything == log.entries()
    last_two = json.loads(run("audit", "--json", "--limit", "2", models=tmp_path, check=0).stdout)
    assert [e["user"] for e in last_two] == ["bob", "carol"]
    table = run("audit", models=tmp_path, check=0).stdout.splitlines()
    assert table[0].split() == ["time", "user", "action", "target", "outcome", "detail"]
    assert [line.split()[1] for line in table[1:]] == ["alice", "bob", "carol"]
    assert "\x1b" not in "\n".join(table) and "\\x1b[31mred" in table[2]  # no terminal escapes from the log


def _in_terminal(args: list[str], answers: list[str], timeout: float = 60) -> tuple[int, str]:
    """Run the CLI on a pseudo-terminal, typing each answer after each prompt; (exit status, screen)."""
    import pty
    import select
    import time

    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGMENTLENS_")}
    pid, fd = pty.fork()
    if pid == 0:  # the child: the pty is its controlling terminal, as in an operator's shell
        os.chdir(ROOT)
        os.execve(sys.executable, [sys.executable, "-m", "core", *args], env)
    screen, deadline, pending = b"", time.monotonic() + timeout, list(answers)
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            screen += chunk
            prompts = screen.count(b"password for") + screen.count(b"again:")
            if pending and prompts > len(answers) - len(pending):
                os.write(fd, pending.pop(0).encode() + b"\n")
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), screen.decode(errors="replace")


def test_prompts_twice_in_a_terminal(tmp_path):
    status, screen = _in_terminal(["users", "add", "erin", "--role", "analyst", "--models", str(tmp_path)],
                                  [PASSWORD, PASSWORD])
    assert status == 0, screen
    assert "password for erin" in screen and "again" in screen and PASSWORD not in screen  # not echoed
    assert AccountStore(tmp_path).authenticate("erin", PASSWORD) == {"name": "erin", "role": "analyst"}
    status, screen = _in_terminal(["users", "add", "frank", "--role", "viewer", "--models", str(tmp_path)],
                                  [PASSWORD, PASSWORD + "x"])
    assert status == 2 and "the passwords do not match" in screen
    assert AccountStore(tmp_path).get_user("frank") is None
