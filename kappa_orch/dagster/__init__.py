"""The Dagster surface: `build_kappa_definitions` (`definitions`) turns specs into one
asset graph (`translator`, `assets`, `batch_asset`, `component` for `dg`), with the
sensors and jobs that reprocess, repair and retire (`automation`), backfill days
(`backfill`), observe the streams (`observe`, `answers`), check their health
(`stream_checks`, `health`), and run the data-quality checks (`quality`).

May import: `lifecycle`, `plan`, `registry`, `config`, `engine`, `resources`, `lineage`,
`spec`, `errors`, `progress`.
"""
