"""The archive: every inbound event and every leadflow decision as Parquet, read with polars."""
