"""The service's HTML, rendered on the server: the upload page with the job list, a job's
page (progress, or failure and retry), the login page, error pages, and the bar put above a
finished job's report.

Every value that came from a client or a capture (file names above all) goes through
:func:`~tlspcap.report.html.esc`. The pages load only ``/static/serve.css`` and
``/static/serve.js`` (no inline script, no CDN, no external font); they work without the
script too (plain form posts, a refreshing job page).
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

from tlspcap import __version__
from tlspcap.report.html import esc, html_parts
from tlspcap.report.summary import totals
from tlspcap.serve.config import format_size
from tlspcap.serve.store import RETRYABLE, Job, Status

STATUS_WORDS = {
    Status.UPLOAD_QUEUED: "waiting to upload",
    Status.UPLOADING: "uploading",
    Status.QUEUED: "queued",
    Status.RUNNING: "analysing",
    Status.DONE: "done",
    Status.FAILED: "failed",
    Status.INTERRUPTED: "interrupted",
}
BAR_CSS = (
    ".tlspcap-serve{display:flex;flex-wrap:wrap;gap:.4em 1.2em;align-items:center;"
    "padding:.6em 1em;margin:-1.5em -1.5em 1em;background:#f3f6fa;border-bottom:1px solid #ccd;"
    "font:14px/1.4 system-ui,sans-serif}.tlspcap-serve form{margin:0}"
    ".tlspcap-serve button{font:inherit;color:#b00020;background:#fff;border:1px solid #b00020;"
    "border-radius:4px;padding:.15em .7em;cursor:pointer}"
)
"""Style of the bar above a report (inline, allowed by its hash)."""


def style_hash(css: str) -> str:
    """A CSP source that allows one inline ``<style>`` element with this content."""
    digest = hashlib.sha256(css.encode()).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


def report_style() -> str:
    """The inline style of the HTML report, as the report writes it."""
    head = next(iter(html_parts([], totals([]))))
    m = re.search(r"<style>(.*?)</style>", head, re.S)
    return m.group(1) if m else ""


def report_csp() -> str:
    """The policy of a report page: its own style and the bar's, nothing else runs or loads."""
    return (
        f"default-src 'none'; style-src {style_hash(report_style())} {style_hash(BAR_CSS)}; "
        "img-src data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )


# ---- pieces ---------------------------------------------------------------------------------
def layout(title: str, body: str, csrf: str, logout: bool, refresh: int | None = None) -> str:
    """A whole page."""
    noscript = (
        f'<noscript><meta http-equiv="refresh" content="{refresh}"></noscript>' if refresh else ""
    )
    out = (
        f'<form method="post" action="/logout">{csrf_input(csrf)}'
        '<button class="link">Log out</button></form>'
        if logout
        else ""
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)} · tlspcap</title>\n{noscript}"
        '<link rel="stylesheet" href="/static/serve.css">\n'
        '<script src="/static/serve.js" defer></script>\n</head>\n<body>\n'
        f'<header><a class="brand" href="/">tlspcap</a><span>why did the TLS handshake fail?'
        f"</span>{out}</header>\n<main>\n{body}\n</main>\n"
        f'<footer>tlspcap {esc(__version__)} · <a href="/api/v1/openapi.json">API (OpenAPI)'
        "</a></footer>\n</body>\n</html>\n"
    )


def csrf_input(token: str) -> str:
    """The hidden CSRF field of a form."""
    return f'<input type="hidden" name="csrf_token" value="{esc(token)}">'


def files_text(job: Job) -> str:
    """``a.pcap`` or ``a.pcap +2 more`` (escaped)."""
    if not job.files:
        return "(upload in progress)"
    more = f" +{len(job.files) - 1} more" if len(job.files) > 1 else ""
    return esc(job.files[0].name) + more


def status_text(job: Job, position: int | None) -> str:
    """The status in words, with the place in the queue."""
    words = STATUS_WORDS[job.status]
    return f"{words} (#{position} in line)" if position is not None else words


# ---- the upload page --------------------------------------------------------------------------
def upload_form(csrf: str, max_upload: int) -> str:
    """The drop zone and the options."""
    text = " ".join(
        f'<label>{label} <input type="text" name="{name}" maxlength="1000" '
        f'placeholder="{placeholder}"></label>'
        for name, label, placeholder in (
            ("host", "Host name", "when the client sent no SNI"),
            ("server_ciphers", "Server ciphers", "OpenSSL cipher string, e.g. HIGH:!aNULL"),
            ("server_protocols", "Server protocols", "e.g. TLSv1.2,TLSv1.3"),
        )
    )
    return f"""<form id="upload" method="post" action="/jobs" enctype="multipart/form-data"
 data-api="/api/v1/analyses" data-max="{max_upload}" data-max-text="{esc(format_size(max_upload))}">
{csrf_input(csrf)}
<div id="drop" class="drop">
<p><strong>Drop captures here</strong> (pcap, pcapng, or gzip of either; up to
{esc(format_size(max_upload))} in all) or choose them:</p>
<input id="capture" type="file" name="capture" multiple required>
<ul id="chosen"></ul>
</div>
<details><summary>Options (what <code>tlspcap analyze</code> takes)</summary>
<div class="options">
<label>Key log (SSLKEYLOGFILE) <input type="file" name="keylog"></label>
<label>CA bundle (PEM, extra trust anchors) <input type="file" name="ca_bundle"></label>
<label>nginx configuration <input type="file" name="nginx_conf"></label>
{text}
</div></details>
<p><button id="submit" type="submit">Analyse</button>
<progress id="upload-bar" max="100" value="0" hidden></progress>
<span id="upload-text" role="status"></span></p>
</form>"""


def job_rows(jobs: Sequence[Job], positions: dict[str, int | None]) -> str:
    """The job list."""
    if not jobs:
        return "<p>No analyses yet.</p>"
    rows = []
    for job in jobs:
        counts = (
            f"{job.failed}/{job.connections}"
            if job.status == Status.DONE and job.connections is not None
            else ""
        )
        rows.append(
            f'<tr class="st-{job.status}"><td><a href="/jobs/{job.id}">{files_text(job)}</a></td>'
            f"<td>{esc(format_size(sum(f.size for f in job.files)))}</td>"
            f"<td>{esc(status_text(job, positions.get(job.id)))}</td><td>{counts}</td>"
            f"<td>{esc(job.top_cause or '')}</td><td>{_when(job.created_at)}</td></tr>"
        )
    return (
        '<table id="jobs"><thead><tr><th>File</th><th>Size</th><th>Status</th>'
        "<th>Failed/total</th><th>Top cause</th><th>Uploaded (UTC)</th></tr></thead>\n<tbody>"
        + "\n".join(rows)
        + "</tbody></table>"
    )


def _when(ts: float) -> str:
    from tlspcap.serve.service import iso

    return esc((iso(ts) or "").replace("T", " ")[:19])


def index_page(
    csrf: str,
    logout: bool,
    max_upload: int,
    jobs: Sequence[Job],
    positions: dict[str, int | None],
    queue: tuple[int, int, int],
) -> str:
    """The home page: upload, then the recent analyses."""
    running, queued, uploads = queue
    body = (
        "<h1>Analyse a capture</h1>\n"
        + upload_form(csrf, max_upload)
        + '\n<h2>Recent analyses</h2>\n<p id="queue">'
        + f"{running} running, {queued} queued, {uploads} waiting to upload.</p>\n"
        + job_rows(jobs, positions)
    )
    return layout("Analyse a capture", body, csrf, logout)


# ---- a job's page --------------------------------------------------------------------------
def job_page(job: Job, position: int | None, csrf: str, logout: bool, status_url: str) -> str:
    """A job that is not done: progress, or what went wrong with a retry."""
    total = sum(f.size for f in job.files)
    files = "".join(f"<li>{esc(f.name)} ({esc(format_size(f.size))})</li>" for f in job.files)
    finished = job.status in (Status.DONE, *RETRYABLE)
    events = "" if finished else f' data-events="{status_url}/events"'
    parts = [
        f"<h1>{files_text(job)}</h1>",
        f'<section id="job"{events} data-status="{job.status}">',
        f'<p>Status: <strong id="status-text">{esc(status_text(job, position))}</strong></p>',
    ]
    if files:
        parts.append(f"<ul>{files}</ul>")
    if job.reason:
        parts.append(f'<p class="bad" id="reason">{esc(job.reason)}</p>')
    if not finished:
        parts += [
            '<p><label>Upload <progress id="upload-bar" max="100" value="0"></progress></label>'
            ' <span id="upload-text"></span></p>',
            f'<p><label>Analysis <progress id="analysis-bar" max="{max(total, 1)}" value="0">'
            '</progress></label> <span id="analysis-text">waiting</span></p>',
        ]
    parts.append("</section>")
    if job.status in RETRYABLE:
        parts.append(
            f'<form method="post" action="/jobs/{job.id}/retry">{csrf_input(csrf)}'
            '<button id="retry">Retry</button></form>'
        )
    if job.status not in (Status.UPLOAD_QUEUED, Status.UPLOADING):
        parts.append(delete_form(job, csrf))
    return layout(
        f"Analysis of {job.files[0].name if job.files else 'an upload'}",
        "\n".join(parts),
        csrf,
        logout,
        refresh=None if finished else 2,
    )


def delete_form(job: Job, csrf: str) -> str:
    """The "delete now" button."""
    return (
        f'<form method="post" action="/jobs/{job.id}/delete">{csrf_input(csrf)}'
        '<button id="delete" class="danger">Delete now</button></form>'
    )


def report_bar(job: Job, csrf: str) -> str:
    """The bar above a finished job's report: files, what was read, downloads, delete."""
    api = f"/api/v1/analyses/{job.id}"
    read = (
        f"{job.packets or 0:,} packets, {esc(format_size(job.bytes_read or 0))} read"
        f" in {len(job.files)} file(s)"
    )
    cpu = f" ({job.worker_cpu:.1f} s CPU)" if job.worker_cpu is not None else ""
    links = " · ".join(
        f'<a href="{api}/report.{ext}?download=1">{label}</a>'
        for ext, label in (("html", "HTML"), ("md", "Markdown"), ("json", "JSON"))
    )
    return (
        f"<style>{BAR_CSS}</style>\n"
        '<nav class="tlspcap-serve" aria-label="analysis">'
        '<a href="/">&larr; All analyses</a>'
        f'<span id="read-summary">{read}{cpu}</span>'
        f"<span>Download: {links}</span>{delete_form(job, csrf)}</nav>\n"
    )


def report_page(report: Path, bar: str) -> Iterator[bytes]:
    """The report file with ``bar`` put right after its ``<body>`` tag, streamed."""
    with report.open("rb") as fh:
        head = fh.read(64 * 1024)
        at = head.find(b"<body>")
        cut = at + len(b"<body>") if at >= 0 else 0
        yield head[:cut] + b"\n" + bar.encode() + head[cut:]
        while chunk := fh.read(256 * 1024):
            yield chunk


# ---- login and errors -------------------------------------------------------------------------
def login_page(csrf: str, message: str | None = None) -> str:
    """The token form."""
    note = f'<p class="bad">{esc(message)}</p>' if message else ""
    body = (
        f"<h1>Log in</h1>{note}"
        f'<form method="post" action="/login" class="login">{csrf_input(csrf)}'
        '<label>Access token <input type="password" name="token" autocomplete="current-password"'
        " required autofocus></label> <button>Log in</button></form>"
    )
    return layout("Log in", body, csrf, logout=False)


def error_page(status: int, message: str, csrf: str, logout: bool) -> str:
    """A refused request, for a person."""
    body = (
        f"<h1>Error {status}</h1>"
        f'<p class="bad" id="error">{esc(message)}</p><p><a href="/">Back to the analyses</a></p>'
    )
    return layout(f"Error {status}", body, csrf, logout)
