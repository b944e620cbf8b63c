"""Features: definitions, dataset generation (content-addressed versions) and the point-in-time sources plugins read."""
