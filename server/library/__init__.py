"""The video library and its jobs: uploads, ingest, retention."""
