"""Routes: public model names whose strategies pick, per request, which model runs."""
