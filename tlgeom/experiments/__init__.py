"""The papers' experiments, built from geometry, stats and models; each returns a Result."""
