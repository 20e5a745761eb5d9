"""The rules engine: one module per rule kind, guardrails, rounding, and the pipeline."""
