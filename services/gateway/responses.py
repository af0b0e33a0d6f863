"""What every gateway response carries, and what the gateway will serve as an image (D-024).

The headers stop a browser from sniffing a blob into HTML, from running anything the
gateway did not ship as a static file, and from leaking the URL (a ticket, or a legacy
client's `?access_token=`, may ride in it) to another origin. A display image is served only when its bytes
are a PNG, and always as `image/png`: a record can name a blob, never its media type.
"""

from __future__ import annotations

from aiohttp import web

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"  # PNG spec, section 5.2


# /monitoring is one self-contained page: inline CSS and its plots as data: PNGs, and no script at
# all. Its handler sets this policy, which keeps every other source closed.
REPORT_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; frame-ancestors 'none'"


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """`on_response_prepare`: runs for every response, streams, static files and errors included.
    Only a response that already carries REPORT_CSP keeps it (the /monitoring page)."""
    for name, value in SECURITY_HEADERS.items():
        if name == "Content-Security-Policy" and response.headers.get(name) == REPORT_CSP:
            continue
        response.headers[name] = value


def is_png(data: bytes) -> bool:
    return data.startswith(PNG_SIGNATURE)
