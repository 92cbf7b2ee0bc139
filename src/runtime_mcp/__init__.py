"""runtime-mcp: hub, MCP server and CLI for runtime-agent."""
