"""`ragkit serve` and `ragkit mcp`: a web page, a JSON API and an MCP server over one warm index.

Nothing here is imported by the other front ends: starlette, uvicorn, jinja2 and mcp load only when a server starts.
"""
