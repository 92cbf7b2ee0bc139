"""A small trading service with a subtle bug, for the runtime-mcp demo."""
