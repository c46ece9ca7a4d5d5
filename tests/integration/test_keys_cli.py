"""`sluice keys …`, `sluice db upgrade` and the auth lines of `sluice serve`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from sluice.bench.processes import start_gateway, start_sim
from sluice.cli import main
from sluice.governance.store import KeyStore
from sluice.state import migrations

pytestmark = pytest.mark.integration
PEPPER = "cli-test-pepper-0123456789"


def test_keys_create_list_show_update_revoke(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'keys.db'}"
    run = CliRunner().invoke
    env = {"SLUICE_KEY_PEPPER": PEPPER}
    out = run(
        main,
        [
            *("keys", "create", "--store", url, "--tenant", "acme", "--team", "blue"),
            *("--model", "gpt-4o-mini", "--rpm", "60", "--expires", "30d"),
            *("--json", '{"budgets": [{"period": "daily", "usd": 5}]}'),
        ],
        env=env,
    )
    assert out.exit_code == 0, out.output
    created = json.loads(out.stdout)
    key, key_id = created["key"], created["key_id"]
    assert key.startswith("sk-sluice-") and created["limits"]["rpm"] == 60
    assert created["budgets"][0]["usd"] == 5 and created["allowed_models"] == ["gpt-4o-mini"]
    assert "cannot be shown again" in out.stderr

    listed = run(main, ["keys", "list", "--store", url], env=env)
    assert listed.exit_code == 0 and key not in listed.stdout
    assert [k["key_id"] for k in json.loads(listed.stdout)] == [key_id]
    shown = json.loads(run(main, ["keys", "show", key_id, "--store", url], env=env).stdout)
    assert shown["team"] == "blue" and "key" not in shown
    updated = run(main, ["keys", "update", key_id, "--store", url, "--tier", "gold"], env=env)
    assert json.loads(updated.stdout)["tier"] == "gold"
    revoked = run(main, ["keys", "revoke", key_id, "--store", url], env=env)
    assert json.loads(revoked.stdout)["status"] == "revoked"

    store = KeyStore(url, PEPPER.encode())
    record = store.find(key)  # the key the CLI printed is the one the gateway will check
    store.close()
    assert record is not None and record.revoked_at is not None

    missing = run(main, ["keys", "show", "key_0000000000000000", "--store", url], env=env)
    assert missing.exit_code != 0 and "no key" in missing.output
    bad = run(main, ["keys", "create", "--store", url, "--tenant", "a", "--rpm", "0"], env=env)
    assert bad.exit_code != 0 and "limits.rpm" in bad.output
    no_pepper = run(main, ["keys", "list", "--store", url], env={"SLUICE_KEY_PEPPER": ""})
    assert no_pepper.exit_code != 0 and "SLUICE_KEY_PEPPER" in no_pepper.output


def test_db_upgrade(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'g.db'}"
    out = CliRunner().invoke(main, ["db", "upgrade", "--store", url])
    assert out.exit_code == 0, out.output
    assert migrations.current(url) == "0003_ledger_once"  # head


def test_serve_refuses_auth_without_a_pepper(tmp_path: Path) -> None:
    config = tmp_path / "prod.yaml"
    config.write_text("governance: {auth: {enabled: true}}\n")
    out = subprocess.run(
        [sys.executable, "-m", "sluice.cli", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "SLUICE_KEY_PEPPER": ""},
    )
    assert out.returncode != 0
    assert "SLUICE_KEY_PEPPER is not set" in out.stderr and "Traceback" not in out.stderr


def test_banner_says_loudly_that_auth_is_off(tmp_path: Path) -> None:
    sim = start_sim(tmp_path)
    try:
        gateway = start_gateway(tmp_path, sim.url)
        gateway.stop()
        assert "AUTH IS OFF" in gateway.log_path.read_text()
    finally:
        sim.stop()
