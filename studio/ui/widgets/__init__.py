"""Reusable widgets that hold no application state."""
