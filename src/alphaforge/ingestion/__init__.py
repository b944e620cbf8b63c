"""How data gets in: uploads (bars, macro series, fundamentals, news) read chunk by chunk,
checked by a data-quality gate per kind, then handed to the market-data stores; and the
bundled sample data loaded on first start."""
