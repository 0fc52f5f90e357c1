"""Building the starter models that ship in ``resources/models``: their training data, training
runs and quality measures. Used by ``python -m studio.starter.train``, never by the app itself."""
