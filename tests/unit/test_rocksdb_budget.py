"""The worker's RocksDB memory budget (streams/rocksdb_store.py) and its helpers."""

from __future__ import annotations

import os
from pathlib import Path

import faust.stores
import pytest

from streams import bench_memory, malloc, rocksdb_store


@pytest.fixture
def budget():
    rocksdb_store.configure(4 * 2**20)
    yield
    rocksdb_store.configure(128 * 2**20)


def test_the_store_url_selects_leadflows_store() -> None:
    assert faust.stores.by_url("leadflow-rocksdb://") is rocksdb_store.Store
    assert issubclass(rocksdb_store.Store, faust.stores.by_url("rocksdb://"))


def test_every_database_shares_one_cache_and_its_budget(budget: None, tmp_path: Path) -> None:
    options = rocksdb_store.SharedOptions(write_buffer_size=1 * 2**20,
                                          max_write_buffer_number=2)
    dbs = [options.open(tmp_path / f"t-{p}.db") for p in range(6)]
    try:
        value = os.urandom(4096)  # incompressible, as a lead state nearly is
        for i in range(3000):
            dbs[i % 6][f"lead-{i}".encode()] = value
        for db in dbs:
            db.flush()
        for i in range(3000):  # reads fill the block cache
            assert dbs[i % 6][f"lead-{i}".encode()] == value
        used, capacity = rocksdb_store.cache_usage()
        assert capacity == 4 * 2**20
        # 12 MiB were written and read back through six databases; Faust's defaults would
        # give each its own cache and memtables. Shared, they stay within the one budget.
        assert 0 < used <= capacity * 1.1
    finally:
        for db in dbs:
            db.close()


def test_malloc_helpers_answer_on_glibc() -> None:
    assert malloc.trim() in (True, False)
    assert isinstance(malloc.limit_arenas(8), bool)


def test_checkpoints() -> None:
    assert bench_memory.checkpoints(5_000) == [5_000]
    assert bench_memory.checkpoints(100_000) == [10_000, 100_000]
    assert bench_memory.checkpoints(1_000_000) == [10_000, 100_000, 1_000_000]


def test_memory_result_reports_per_lead_growth() -> None:
    run = bench_memory.StoreRun("rocksdb", 100 * 2**20,
                                [bench_memory.Point(10_000, 55_000, 120 * 2**20, 60.0)])
    assert run.per_lead(run.points[0]) == pytest.approx(20 * 2**20 / 10_000)
    table = bench_memory.MemoryResult([run]).table()
    assert "rocksdb: 10,000 leads" in table and "120 MiB" in table and "2.05 KiB/lead" in table
