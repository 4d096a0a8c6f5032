"""Monitoring: the reference profile logged at train time, and `mlkit monitor`'s comparison of current data
(a file or the serve prediction log) with it: drift per feature, data quality, prediction drift, decay
against labels, and the policy of mlkit.yaml's ``monitoring:`` section (crossing it is exit code 5).

Modules: ``sketch`` (chunk-mergeable column summaries), ``profile`` (the reference), ``drift`` (the tests),
``assess`` (verdicts and the policy), ``reader`` (current data in chunks), ``store`` (the tracking store),
``monitor`` (the operation), ``render`` (Markdown and HTML reports).
"""
