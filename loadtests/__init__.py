"""Locust load scenarios for Storefabric, with SLO verdicts.

HTTP only: nothing here imports project code, so the scenarios run against any
Storefabric reachable over the network. Entry point: ``python -m loadtests.run``.
"""
