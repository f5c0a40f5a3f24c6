"""The HTTP API: one module per resource; app.py assembles them."""
