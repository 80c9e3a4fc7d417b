"""What the engine accepts and writes, as plain constants that torch-free code reads too.

The dashboard and ``jobs`` check an upload, and find a run's checkpoint, before (or without)
loading the engine's data layer or torch; they import these names from here, so there is one
value for each and no test keeping copies equal. This module imports nothing (no torch, no
numpy): ``python -c "import sys, engine.limits; assert 'torch' not in sys.modules"``.
"""

from __future__ import annotations

# The dataset files the loader reads (engine.data.loaders); anything else is refused on upload.
TABLE_EXTENSIONS: tuple[str, ...] = (".csv", ".tsv", ".txt", ".parquet", ".pq", ".xlsx", ".jsonl")
EXTENSIONS: tuple[str, ...] = (*TABLE_EXTENSIONS, ".npz", ".zip")

# The most columns a table may have: the upload check (jobs.datasets.check) and the loader both
# refuse more, each naming this limit.
MAX_COLUMNS = 5_000

# A run's files in its folder (engine.checkpoint writes them).
CHECKPOINT = "checkpoint.pt"  # everything needed to resume; rewritten every epoch
MODEL = "model.pt"  # the best weights + preprocessor + config, for download / inference
# The model bundle's files (engine/bundle.py writes the folder whole; issue 21), as a remote
# worker ships them to the server (jobs/remote): model.ts last, as Run detail offers a bundle
# whose model.ts is there.
BUNDLE_FILES = tuple(
    f"bundle/{name}"
    for name in ("schema.json", "example.csv", "predict.py", "README.md", "model.ts")
)
