"""Offline evaluation of study results against ground-truth labels (`radstream evaluate`).

Pure functions over plain data: `inputs` reads the files, `study_scores` turns
StudyResult records into one decision and one score per study and label,
`metrics`, `bootstrap`, `curves`, `operating_point` and `froc` compute, `evaluate`
assembles the metrics document and `html_report` draws it. See docs/evaluation.md.
"""
