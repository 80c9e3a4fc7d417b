"""Datasets: uploads, bundled samples, targets and deletion (``ingest``), and the upload check
that runs in a child process under memory and CPU limits (``check``)."""
