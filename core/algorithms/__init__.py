"""Clustering algorithms beyond k-means (GMM, k-prototypes, HDBSCAN, consensus); contract in :mod:`.base`."""
