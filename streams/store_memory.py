"""What a worker's RocksDB tables hold in memory, from RocksDB's own properties.

Served in ``GET /v1/stats`` (``store_memory``, bytes summed over every open table partition)
and reported by ``leadflow bench memory`` beside the resident set.
"""

from __future__ import annotations

from typing import Any

PROPERTIES = {
    "memtables": "rocksdb.cur-size-all-mem-tables",  # active and unflushed immutable ones
    "memtables_pinned": "rocksdb.size-all-mem-tables",  # also flushed ones still pinned
    "table_readers": "rocksdb.estimate-table-readers-mem",  # indexes and filters not cached
    "block_cache": "rocksdb.block-cache-usage",
    "block_cache_pinned": "rocksdb.block-cache-pinned-usage",
    "live_versions": "rocksdb.num-live-versions",
}


def rocksdb_memory(app: Any) -> dict[str, int] | None:
    """Sums over every open RocksDB database of the app's tables; None with memory tables."""
    out = dict.fromkeys(PROPERTIES, 0)
    out["databases"] = 0
    for table in list(app.tables.values()):
        dbs = getattr(table.data, "_dbs", None)
        if dbs is None:
            continue
        for db in list(dbs.values()):
            out["databases"] += 1
            for name, prop in PROPERTIES.items():
                try:
                    value = db.property_int_value(prop)
                except Exception:  # closed meanwhile, or a property this RocksDB lacks
                    value = None
                if value is None:
                    continue
                out[name] += value
    if not out["databases"]:
        return None
    from streams import rocksdb_store

    shared = rocksdb_store.cache_usage()
    if shared is not None:  # one cache for every database: each reports all of it
        out["block_cache"], out["budget"] = shared
        out.pop("block_cache_pinned")
    return out
