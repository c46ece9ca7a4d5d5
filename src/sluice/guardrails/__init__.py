"""Input limits, prompt-injection detection, PII masking that restores, output checks."""
