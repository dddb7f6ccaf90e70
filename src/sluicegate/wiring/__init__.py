"""Model entries -> routers over providers: the one place that knows both `routing` and
`providers` (the entry union, the router builder, the registry that resolves a model name)."""
