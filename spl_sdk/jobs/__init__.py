"""Batch jobs: a manifest of edits, keyed rows, engines that run them, and the results table.

``spl batch`` is the command; :func:`spl_sdk.jobs.runner.run_batch` is the API. Heavy
libraries (torch, ray, pyarrow) are imported inside the functions that need them.
"""
