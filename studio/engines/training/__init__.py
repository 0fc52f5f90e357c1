"""Training on the artist's own work: one trainer per medium (``registry``), the contract in ``base``."""
