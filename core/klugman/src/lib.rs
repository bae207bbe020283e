//! klugman: command-line client for the stv3 REST API.
