"""The Qt window: panels turn widgets into requests and show events; no torch here."""
