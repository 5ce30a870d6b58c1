"""The only I/O. The runner asks one door (`door.py`): this agent's chat → its reply. Behind it: the
request cache, endpoints (limits, budgets, retries; `endpoint.py`) over a transport (`transport.py`,
`online.py`), failure classification (`failures.py`), reply shapes in each endpoint's dialect
(`structured.py`), the LLM's configuration and key (`config.py`, `secret.py`), the per-process event
loop and the embedded local model server."""
