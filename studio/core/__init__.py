"""Plain data and rules shared by every layer: standard library only, no Qt, no torch."""
