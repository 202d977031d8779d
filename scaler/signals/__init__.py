"""Signal sources: one module per source behind the small `Source` interface."""
