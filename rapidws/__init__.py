"""rapidws: a fast, correct WebSocket server and client for asyncio."""
__version__ = "0.1.0"
