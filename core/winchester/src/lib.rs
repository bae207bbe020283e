//! winchester: triggers, streams and pipelines over a SQL event store (MySQL/MariaDB or SQLite).
