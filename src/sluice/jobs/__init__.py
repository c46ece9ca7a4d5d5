"""Async jobs (`/v1/sluice/jobs`) and signed webhook delivery."""
