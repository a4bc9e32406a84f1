"""Who may call the HTTP API: API keys with scopes, endpoints opened on purpose, rate limits.

``keys`` (API keys, their hashes and the configured key ring), ``ratelimit`` (token buckets),
``rules`` (what each endpoint needs) are plain Python; ``guard`` is the aiohttp middleware
that applies them in front of every route of the worker's web server; ``client`` is what
leadflow's own clients (``leadflow trace``, the simulator, the dashboard) send.
"""
