"""Access control: API keys (stored as hashes), roles, and the audit trail of mutating requests."""
