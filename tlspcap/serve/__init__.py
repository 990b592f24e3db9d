"""``tlspcap serve``: a capture drop-box for support teams, with a page and a JSON API.

A user drops captures on the page (or a bot posts them to ``/api/v1/analyses``); each upload is
streamed to disk and becomes a *job*, analysed in its own worker process exactly as
``tlspcap analyze`` would, and its reports (HTML, Markdown, JSON) are served back.

Modules: ``config`` (settings and start-up checks), ``store`` (SQLite job table), ``paths``
(a job's files), ``uploads`` (streaming multipart receiver), ``runner`` (queues and worker
processes), ``worker`` (the analysis process), ``security`` (token, cookies, CSRF, headers),
``service`` (job operations shared by the API and the pages), ``api`` and ``views`` (handlers),
``pages`` (HTML), ``openapi`` (the API's schema), ``app`` (the ASGI app), ``server`` (uvicorn).
"""
