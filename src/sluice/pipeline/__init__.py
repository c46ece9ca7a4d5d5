"""The request pipeline: small stages composed once at startup."""
