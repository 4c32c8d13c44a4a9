//! Links, addresses, route tables and rules the router needs.
