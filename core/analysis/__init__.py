"""Error analysis of a trained detector and comparison of runs: the TIDE error breakdown,
COCO-style per-class and per-size tables, run-directory readers and static HTML reports.

The algorithms take :class:`~core.evaluation.records.ImageResult` records (ground truth and
predictions of each image in original pixels) and so serve every detector family; the
commands ``plugdet analyze`` and ``plugdet compare`` (``core.tools``) produce the records and
write the pages.
"""
