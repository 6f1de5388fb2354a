"""Core: metadata store, content-addressed blobs, journal, plugins."""
