"""Base encoders that can be built without the model hub."""
