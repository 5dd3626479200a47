"""Ingest assets (one per source kind) and the checks of ingested data."""
