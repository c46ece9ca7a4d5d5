"""Uploaded files (`/v1/files`): tenant-owned blobs with a purpose, for batches and retrieval."""
