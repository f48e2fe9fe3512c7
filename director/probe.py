"""``python -m director.probe [URL]``: a container health check for chat-director.

Exit 0 if ``GET URL`` (default ``http://127.0.0.1:8700/healthz``) answers 200, else 1 with
one line on stderr. The image has no curl, and a probe command must survive podman's
conversion of a Kubernetes exec probe (its words joined by spaces and run by /bin/sh),
which an inline ``python3 -c '...'`` does not.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from collections.abc import Sequence

DEFAULT_URL = "http://127.0.0.1:8700/healthz"
TIMEOUT = 5.0


def probe(url: str, timeout: float = TIMEOUT) -> str | None:
    """None if ``url`` answers 200, else why not."""
    # No proxies: the director is asked directly, whatever the environment says.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except urllib.error.URLError as exc:
        return str(exc.reason)
    except (OSError, ValueError) as exc:  # a timeout mid-answer, a malformed URL
        return str(exc) or type(exc).__name__
    return None if status == 200 else f"HTTP {status}"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) > 1 or args[:1] in (["-h"], ["--help"]):
        print("usage: python -m director.probe [URL]", file=sys.stderr)
        return 2
    url = args[0] if args else DEFAULT_URL
    problem = probe(url)
    if problem is not None:
        print(f"director.probe: {url}: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
