"""moto's S3 server with one lock around the whole WSGI application.

Stock moto checks a write's precondition (If-None-Match, If-Match) and then
writes without holding a lock, so under concurrent requests two conditional
writers can both succeed. Serving one request at a time makes every
conditional write atomic, which is what the real service guarantees.
"""

import argparse
import logging
import threading

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple


class Serialized:
    """A WSGI middleware that runs one request at a time, body included."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        with self.lock:
            result = self.app(environ, start_response)
            try:
                # Produce the whole body under the lock: a lazy iterable would
                # otherwise run moto code after the lock is released.
                return [b"".join(result)]
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5055)
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    # Requests are routed to S3 by their signature's credential scope (and
    # the Host header), as in stock moto_server.
    app = Serialized(DomainDispatcherApplication(create_backend_app))
    run_simple(
        args.host,
        args.port,
        app,
        threaded=True,
        use_reloader=False,
        use_debugger=False,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
