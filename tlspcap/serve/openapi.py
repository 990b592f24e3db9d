"""The OpenAPI 3.1 description of ``/api/v1``, served at ``/api/v1/openapi.json``.

Written by hand (the upload is a streamed multipart body, not a model a framework could
derive); ``tests/test_serve_api.py`` checks that it lists exactly the API's routes.
"""

from __future__ import annotations

from typing import Any

from tlspcap import __version__
from tlspcap.serve.store import Status

_ID = {
    "name": "job_id",
    "in": "path",
    "required": True,
    "description": "The analysis id: 32 hex digits (128 random bits).",
    "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
}


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _status(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Analysis"}}},
    }


_UNAUTHORIZED = _error("Missing or wrong token (only when the service has one).")
_NOT_FOUND = _error("No such analysis (never existed, expired or deleted).")


def _report(media: str, what: str) -> dict[str, Any]:
    return {
        "get": {
            "summary": f"The {what} report",
            "description": f"The same bytes as `tlspcap analyze --format {what.lower()}` on the "
            "same files and options. `?download=1` asks the browser to save it.",
            "parameters": [
                _ID,
                {"name": "download", "in": "query", "schema": {"type": "string", "enum": ["1"]}},
            ],
            "responses": {
                "200": {"description": "The report.", "content": {media: {}}},
                "401": _UNAUTHORIZED,
                "404": _NOT_FOUND,
                "409": _error("The analysis is not done."),
            },
        }
    }


def schema() -> dict[str, Any]:
    """The OpenAPI document."""
    upload = {
        "type": "object",
        "required": ["capture"],
        "properties": {
            "capture": {
                "type": "array",
                "items": {"type": "string", "contentMediaType": "application/octet-stream"},
                "description": "One or more captures: pcap, pcapng, or gzip of either.",
            },
            "keylog": {"type": "string", "contentMediaType": "text/plain",
                       "description": "An SSLKEYLOGFILE (like --keylog)."},
            "ca_bundle": {"type": "string", "contentMediaType": "application/x-pem-file",
                          "description": "Extra trust anchors, PEM (like --ca-bundle)."},
            "nginx_conf": {"type": "string", "contentMediaType": "text/plain",
                           "description": "An nginx configuration (like --nginx-conf)."},
            "host": {"type": "string", "description": "Like --host."},
            "server_ciphers": {"type": "string", "description": "Like --server-ciphers."},
            "server_protocols": {"type": "string", "description": "Like --server-protocols."},
        },
    }  # fmt: skip
    job = "/api/v1/analyses/{job_id}"
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "tlspcap serve",
            "version": __version__,
            "description": "Upload packet captures; get, per TLS connection, why the handshake "
            "failed. Authentication (when the service has a token): `Authorization: Bearer "
            "TOKEN`. Errors are `{\"error\": message, \"status\": code}`.",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error", "status"],
                    "properties": {"error": {"type": "string"}, "status": {"type": "integer"}},
                },
                "Analysis": {
                    "type": "object",
                    "required": ["id", "status", "status_url"],
                    "properties": {
                        "id": {"type": "string"},
                        "status": {"type": "string", "enum": [str(s) for s in Status]},
                        "status_url": {"type": "string"},
                        "page_url": {"type": "string"},
                        "queue_position": {"type": ["integer", "null"]},
                        "reason": {"type": ["string", "null"],
                                   "description": "Why it failed or was interrupted."},
                        "created_at": {"type": "string", "format": "date-time"},
                        "started_at": {"type": ["string", "null"], "format": "date-time"},
                        "finished_at": {"type": ["string", "null"], "format": "date-time"},
                        "expires_at": {"type": "string", "format": "date-time"},
                        "files": {"type": "array", "items": {"type": "object"}},
                        "options": {"type": "object"},
                        "progress": {"type": "object"},
                        "summary": {"type": ["object", "null"]},
                        "worker": {"type": ["object", "null"]},
                        "attempts": {"type": "integer"},
                        "links": {"type": "object"},
                        "result": {
                            "type": "object",
                            "description": "Once done: the document of `tlspcap analyze "
                            "--format json` (schema_version, captures), its bytes unchanged.",
                        },
                    },
                },
            },
        },
        "security": [{"bearer": []}, {}],
        "paths": {
            "/api/v1/analyses": {
                "post": {
                    "summary": "Upload captures for analysis",
                    "requestBody": {
                        "required": True,
                        "content": {"multipart/form-data": {"schema": upload}},
                    },
                    "responses": {
                        "202": _status("Accepted and queued; poll `status_url`."),
                        "400": _error("Malformed request, or no capture in it."),
                        "401": _UNAUTHORIZED,
                        "413": _error("Over --max-upload, or not enough free disk space."),
                        "415": _error("Not multipart/form-data, or a file is not a capture."),
                        "422": _error("An option is unusable (unknown field, bad value)."),
                    },
                },
                "get": {
                    "summary": "The newest analyses",
                    "parameters": [
                        {"name": "limit", "in": "query", "schema": {"type": "integer"}}
                    ],
                    "responses": {"200": {"description": "`{analyses: [...], running, queued, "
                                          "uploads_waiting}`"}, "401": _UNAUTHORIZED},
                },
            },
            job: {
                "get": {
                    "summary": "Status, and the JSON report once done",
                    "parameters": [_ID],
                    "responses": {"200": _status("The analysis."), "401": _UNAUTHORIZED,
                                  "404": _NOT_FOUND},
                },
                "delete": {
                    "summary": "Delete the analysis and its files now",
                    "parameters": [_ID],
                    "responses": {"204": {"description": "Deleted."}, "401": _UNAUTHORIZED,
                                  "404": _NOT_FOUND,
                                  "409": _error("Still being uploaded.")},
                },
            },
            job + "/retry": {
                "post": {
                    "summary": "Queue a failed or interrupted analysis again",
                    "parameters": [_ID],
                    "responses": {"202": _status("Queued."), "401": _UNAUTHORIZED,
                                  "404": _NOT_FOUND,
                                  "409": _error("Not failed or interrupted, or inputs gone.")},
                },
            },
            job + "/events": {
                "get": {
                    "summary": "Server-sent events: a `status` event at each change",
                    "parameters": [_ID],
                    "responses": {"200": {"description": "An event stream.",
                                          "content": {"text/event-stream": {}}},
                                  "401": _UNAUTHORIZED, "404": _NOT_FOUND},
                },
            },
            job + "/report.json": _report("application/json", "JSON"),
            job + "/report.html": _report("text/html", "HTML"),
            job + "/report.md": _report("text/markdown", "Markdown"),
        },
    }  # fmt: skip
