//! quincy/quince: the stv3 REST API (v1/v2 wire-compatible) on axum.
