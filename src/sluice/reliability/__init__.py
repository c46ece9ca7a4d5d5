"""Reliability: retries, retry budget, breakers, load balancing, slots and the plan executor."""
