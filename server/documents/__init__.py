"""The shared room document: reading its annotation model, exporting it, and tag frameworks."""
