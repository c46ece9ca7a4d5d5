"""Evaluation (issue 17): user feedback joined to call records, offline eval runs with
deterministic scorers, reports and CI gates. A feature package: it may use other features
(observe's record store), never the gateway, server, web or stages.
"""
