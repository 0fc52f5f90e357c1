"""Studio: a desktop studio for generating text, images and music with local models."""

__version__ = "0.1.0"
APP_NAME = "Studio"
