"""Faust's RocksDB table store with one memory budget for the whole worker.

Faust opens one RocksDB database per table partition and gives each its own block cache and
its own write buffers (memtables). With leadflow's ten table partitions that is ten 16 MiB
caches and up to twenty 8 MiB memtables, and it grows with the partition count (standby
partitions included). Profiled with memray (``leadflow bench memory``): at 20,000 leads the
memtables' arena blocks (allocated under ``Store._set``) were 275 of the 431 MiB the worker
had allocated, and RocksDB reported 156 MiB of memtables and 79 MiB of block caches.

Here every database of the worker shares one LRU block cache of ``rocksdb_memory_mb``, and
the memtables of all of them are limited together by a write buffer manager whose memory is
charged to that cache (half of it). RocksDB's memory is then one figure, whatever the
partitions, plus the open files' indexes and bloom filters, which stay outside the cache
(a few bytes a key: 30 KiB at 100,000 leads). In the cache they were evicted by data blocks
and read again on lookups: the SLA tick slowed to seconds in the two-worker test.

Selected by the ``leadflow-rocksdb://`` store URL (entry point ``faust.stores``); the files
on disk are Faust's own, so switching between the two keeps the tables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import rocksdict
from faust.stores import rocksdb as faust_rocksdb

# Shared by every database this process opens (one worker per process).
_budget: dict[str, Any] = {}


def configure(memory_bytes: int) -> None:
    """The worker's RocksDB memory budget: block cache, memtables charged to it."""
    _budget.clear()
    _budget["bytes"] = memory_bytes


def _shared() -> tuple[rocksdict.Cache, rocksdict.WriteBufferManager]:
    if "cache" not in _budget:
        size = _budget.get("bytes", 128 * 2**20)
        cache = rocksdict.Cache(size)
        _budget["cache"] = cache
        # No stall: a write past the limit triggers flushes, it never waits for them.
        _budget["wbm"] = rocksdict.WriteBufferManager.new_write_buffer_manager_with_cache(
            size // 2, False, cache)
    return _budget["cache"], _budget["wbm"]


def cache_usage() -> tuple[int, int] | None:
    """(used, capacity) of the shared block cache, memtables included; None if unused."""
    if "cache" not in _budget:
        return None
    return _budget["cache"].get_usage(), _budget.get("bytes", 0)


class SharedOptions(faust_rocksdb.RocksDBOptions):
    def open(self, path: Path, *, read_only: bool = False) -> Any:
        options = self.as_options()
        options.set_db_paths([rocksdict.DBPath(str(path), self.target_file_size_base)])
        db = rocksdict.Rdict(str(path), options=options,
                             access_type=rocksdict.AccessType.read_write())
        db.set_read_options(rocksdict.ReadOptions())
        return db

    def as_options(self) -> rocksdict.Options:
        cache, wbm = _shared()
        options = rocksdict.Options(raw_mode=True)
        options.create_if_missing(True)
        options.set_max_open_files(self.max_open_files)
        options.set_write_buffer_size(self.write_buffer_size)
        options.set_target_file_size_base(self.target_file_size_base)
        options.set_max_write_buffer_number(self.max_write_buffer_number)
        options.set_write_buffer_manager(wbm)
        table = rocksdict.BlockBasedOptions()
        table.set_bloom_filter(self.bloom_filter_size, True)
        table.set_block_cache(cache)
        table.set_index_type(rocksdict.BlockBasedIndexType.binary_search())
        options.set_block_based_table_factory(table)
        return options


class Store(faust_rocksdb.Store):
    def __init__(self, url: Any, app: Any, table: Any, **kwargs: Any) -> None:
        super().__init__(url, app, table, **kwargs)
        if not self.use_rocksdict:
            raise RuntimeError("leadflow's RocksDB store needs rocksdict")
        self.rocksdb_options = SharedOptions(**self.options, use_rocksdict=True)
