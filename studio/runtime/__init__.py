"""The worker thread that owns the device and the models, and the services around it."""
