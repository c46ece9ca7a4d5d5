"""Provider adapters: pure wire translation plus one pooled HTTP client each."""
