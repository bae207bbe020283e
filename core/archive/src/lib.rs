//! shoebox: rolling gzip JSON-lines archives of raw notifications, and readers for them and the original binary v1 format.
