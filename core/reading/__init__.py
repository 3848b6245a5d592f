"""Reading customers: parsing cells, the canonical file, cleaning, engineered features, column mappings, order logs (RFM), streamed sources, PostgreSQL and DuckDB, the synthetic sample."""
