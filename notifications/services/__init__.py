"""Writes of the notifications app, one module per job (endpoints, fan-out, delivery, health, email)."""
