"""TCP stream reassembly and connection tracking."""
