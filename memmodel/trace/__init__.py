"""Trace layer: the record schema, readers for lackey and perf mem, and the Parquet trace store."""
