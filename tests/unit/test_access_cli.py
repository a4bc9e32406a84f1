"""`leadflow keys`, `leadflow config` and the key `leadflow up` gives the processes it starts."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from streams.access import client, keys
from streams.cli import main
from streams.settings import Settings
from streams.up import LOCAL_KEY_ID, local_key


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name in ("LEADFLOW_API_KEY", "LEADFLOW_API_KEYS", "LEADFLOW_PUBLIC_ENDPOINTS"):
        monkeypatch.delenv(name, raising=False)
    return {"LEADFLOW_CONFIG": str(tmp_path / "absent.toml"), "LEADFLOW_DATA_DIR": str(tmp_path)}


def test_keys_new_prints_a_key_once_and_the_line_of_its_hash(env: dict[str, str]) -> None:
    out = CliRunner().invoke(main, ["keys", "new", "--id", "ops", "--scope", "read",
                                    "--scope", "admin"], env=env)
    assert out.exit_code == 0, out.output
    lines = [line.strip() for line in out.output.splitlines()]
    key = next(line for line in lines if line.startswith("lfk_"))
    entry = next(line for line in lines if line.startswith("ops:"))
    assert entry == f"ops:read+admin:{keys.digest(key)}"
    assert out.output.count(key) == 1
    listed = CliRunner().invoke(main, ["keys", "list"], env={**env, "LEADFLOW_API_KEYS": entry})
    assert "ops" in listed.output and "read+admin" in listed.output
    assert keys.digest(key) not in listed.output and key not in listed.output
    hashed = CliRunner().invoke(main, ["keys", "hash", "--id", "ops", "--scope", "read",
                                       "--scope", "admin"], input=key + "\n", env=env)
    assert hashed.output.strip() == entry


def test_keys_new_refuses_a_bad_id_or_scope(env: dict[str, str]) -> None:
    bad = CliRunner().invoke(main, ["keys", "new", "--id", "a b", "--scope", "read"], env=env)
    assert bad.exit_code != 0 and "key id" in bad.output and "lfk_" not in bad.output
    assert CliRunner().invoke(main, ["keys", "new", "--id", "a", "--scope", "all"],
                              env=env).exit_code != 0


def test_config_shows_key_ids_never_a_key(env: dict[str, str]) -> None:
    key = keys.new_key()
    line = keys.configured("forms", ["ingest"], key).line()
    out = CliRunner().invoke(main, ["config"], env={**env, "LEADFLOW_API_KEY": key,
                                                    "LEADFLOW_API_KEYS": line})
    assert out.exit_code == 0
    assert "<1 key(s): forms>" in out.output and "'<set>'" in out.output
    assert key not in out.output and keys.digest(key) not in out.output


def test_up_makes_a_key_once_keeps_it_private_and_lets_the_worker_accept_it(
    tmp_path: Path,
) -> None:
    configured = keys.configured("forms", ["ingest"], keys.new_key()).line()
    settings = Settings.load(env={}, data_dir=str(tmp_path), api_keys=(configured,))
    child: dict[str, str] = {}
    settings2, note = local_key(settings, child)
    key = settings2.api_key
    path = client.key_file(settings)
    assert path.read_text().strip() == key and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert key not in note and str(path) in note
    assert child["LEADFLOW_API_KEY"] == key
    ring = keys.KeyRing(child["LEADFLOW_API_KEYS"].split(","))
    assert ring.find(key).id == LOCAL_KEY_ID and ring.find(key).scopes == set(keys.SCOPES)
    assert len(ring) == 2  # the configured key stays
    # Again: the same key from the file, not a second one; `leadflow trace` finds it too.
    again, _ = local_key(settings, {})
    assert again.api_key == key and client.client_key(settings) == key
    assert len(again.api_keys) == 2


def test_up_uses_the_key_of_the_environment_and_adds_no_hash_it_already_has(
    tmp_path: Path,
) -> None:
    key = keys.new_key()
    line = keys.configured("mine", list(keys.SCOPES), key).line()
    settings = Settings.load(env={"LEADFLOW_API_KEY": key, "LEADFLOW_API_KEYS": line},
                             data_dir=str(tmp_path))
    child: dict[str, str] = {}
    settings2, note = local_key(settings, child)
    assert settings2.api_key == key and child["LEADFLOW_API_KEYS"] == line
    assert "LEADFLOW_API_KEY" in note and not client.key_file(settings).exists()
