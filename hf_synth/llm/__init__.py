"""The only I/O: endpoint configuration, the engine that sends requests, the request cache, the
per-process event loop, and the embedded local model server."""
