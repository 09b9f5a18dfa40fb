"""Auditing a collection before trusting its scores (docs/audit.md): near-copies (and the splits they straddle),
items that are not paintings, and labels that look wrong, each ranked, each one command or click from a curation
decision. Layer 3, beside train/ (whose frozen-feature cache and folds it reuses) and explain/."""

from artlab.audit.audit import COLUMNS, KINDS, Audit, audit_collection, run_leakage  # noqa: F401
