"""The gallery: output files with their provenance, and a searchable index of them."""
