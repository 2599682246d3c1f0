"""The blob stores: the local folder and S3-compatible ones, the names blobs get, and how long uploads are kept."""
