"""Workflows and activities of the Temporal adapter's tests, kept out of test modules.

The workflow sandbox re-imports a workflow's module; keeping workflows here
(and importing activities under `imports_passed_through`) is the layout
temporalio's own tests use.
"""
