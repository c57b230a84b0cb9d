"""Operations commands: `kmop dead-letters` (list, requeue) and `kmop stuck` (find, resume)."""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from kmop.demo import example_applicant, sworn_statement_job
from kmop.jobs import parse_job
from storage.local import LocalFolderStore
from workers.dead_letters import dead_letter_key
from workers.outbox import record_job

@pytest.fixture
def env(tmp_path: Path, redis_url: str, namespace: str) -> dict[str, str]:
    return {**os.environ, "KMOP_BROKER": "redis", "KMOP_REDIS_URL": redis_url, "KMOP_REDIS_NAMESPACE": namespace,
            "KMOP_STORAGE": "local", "KMOP_LOCAL_STORAGE_DIR": str(tmp_path / "store")}


def _kmop(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kmop.cli", *args], capture_output=True, text=True, env=env,
                          timeout=120)


def _queued(env: dict[str, str]) -> int:
    client = redis.Redis.from_url(env["KMOP_REDIS_URL"])
    try:
        return client.llen(f"{env['KMOP_REDIS_NAMESPACE']}:documents")
    finally:
        client.close()


def _job(dossier_id: str) -> dict:
    job = copy.deepcopy(sworn_statement_job(example_applicant()).to_message())
    job["dossier_id"] = dossier_id
    return job


def test_dead_letters_are_listed_with_their_reason_and_can_be_requeued(env: dict[str, str]) -> None:
    store = LocalFolderStore(Path(env["KMOP_LOCAL_STORAGE_DIR"]))
    job = _job("OPS-DEAD")
    letter = {"message_id": "m-1", "queue": "documents", "actor": "generate_document", "args": [job],
              "retries": 6, "error_type": "ConversionTimeout", "reason": "the conversion took longer than 60 s",
              "failed_at": "2026-11-29T10:00:00+00:00"}
    store.put_once(dead_letter_key("m-1"), json.dumps(letter).encode(), "application/json")

    listed = _kmop(env, "dead-letters")
    assert listed.returncode == 0, listed.stderr
    assert "m-1" in listed.stdout and "OPS-DEAD/sworn_statement" in listed.stdout
    assert "ConversionTimeout: the conversion took longer than 60 s" in listed.stdout

    requeued = _kmop(env, "dead-letters", "--requeue", "m-1")
    assert requeued.returncode == 0, requeued.stderr
    assert _queued(env) == 1
    assert _kmop(env, "dead-letters", "--requeue", "nope").returncode == 2


def test_stuck_finds_a_lost_job_and_resume_hands_it_back(env: dict[str, str]) -> None:
    store = LocalFolderStore(Path(env["KMOP_LOCAL_STORAGE_DIR"]))
    job = _job("OPS-LOST")
    record_job(store, parse_job(job), now=dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1))

    found = _kmop(env, "stuck", "--older-than", "600")
    assert found.returncode == 0, found.stderr
    assert "stuck" in found.stdout and "OPS-LOST/sworn_statement" in found.stdout
    assert _queued(env) == 0

    resumed = _kmop(env, "stuck", "--older-than", "600", "--resume")
    assert resumed.returncode == 0 and "resumed as" in resumed.stdout
    assert _queued(env) == 1
    assert "nothing stuck" in _kmop(env, "stuck", "--older-than", "7200").stdout
