"""The pipeline spec: YAML and SQL read strictly (`load`, `model`, `settings`, `rules`),
the SELECT read for columns and classifications (`sql`, `columns`, `classify`), the
data-quality checks it declares (`checks`) and its fingerprint (`fingerprint`). Pure: no
servers, no engine.

May import: `kappa_orch.errors`.
"""
