"""HTTP: the /open_api/v1.3/ dispatcher, the consent page, the control and inspection endpoints."""

from __future__ import annotations

import hashlib
import json
import secrets
import socket
import time
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from flask import Flask, Response, render_template, request

from .api import ENDPOINTS, Call
from .config import ConfigError
from .runtime import Sandbox
from .validation import (
    DUPLICATED_REQUEST,
    FREQUENCY_LIMITED,
    INVALID_REQUEST,
    PARTIAL_OK,
    RATE_LIMITED,
    SERVER_ERROR,
    TOKEN_EXPIRED,
    TOKEN_INVALID,
    TOKEN_MISSING,
    ApiError,
)

API_PREFIX = "/open_api/v1.3/"
# Writes TikTok deduplicates (40050) when the duplicate_window_s switch is on.
DEDUPLICATED = frozenset({"segment/audience/", "segment/mapping/"})
HTML_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>Tengine</center>\r\n"
    "</body>\r\n</html>\r\n"
)


class DropConnection(ConnectionResetError):
    """Raised after the socket was shut: the server then has nobody to answer."""


def request_id() -> str:
    return time.strftime("%Y%m%d%H%M%S", time.gmtime()) + secrets.token_hex(10).upper()


def envelope(code: int, message: str, data: dict[str, Any] | None = None) -> Response:
    rid = request_id()
    body = json.dumps({"code": code, "message": message, "request_id": rid, "data": data or {}})
    response = Response(body, status=200, mimetype="application/json")
    response.headers["X-Tt-Logid"] = rid
    return response


def plain(status: int, text: str) -> Response:
    return Response(text, status=status, mimetype="text/plain")


def create_app(sandbox: Sandbox) -> Flask:
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 60 * 1024 * 1024
    app.json.sort_keys = False  # type: ignore[attr-defined]

    @app.errorhandler(404)
    def not_found(_error: Exception) -> Response:
        return plain(404, "404 page not found")

    @app.errorhandler(405)
    def not_allowed(_error: Exception) -> Response:
        return plain(405, "405 method not allowed")

    @app.errorhandler(DropConnection)
    def dropped(_error: Exception) -> Response:
        # Never reaches anyone (the socket is already shut); 444 is nginx's "closed without
        # a response", so the access log says what happened.
        return plain(444, "")

    @app.get("/")
    def index() -> Response:
        return plain(
            200,
            "TikTok Marketing API sandbox (local stand-in)\n"
            f"API base: {request.host_url.rstrip('/')}{API_PREFIX}\n"
            f"Authorization page: {request.host_url}portal/auth"
            "?app_id=..&state=..&redirect_uri=..\n",
        )

    @app.route(API_PREFIX + "<path:endpoint>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    def open_api(endpoint: str) -> Response:
        # Werkzeug's <path> drops a trailing slash, so read the raw path: no slash, no API.
        endpoint = request.path[len(API_PREFIX) :]
        spec = ENDPOINTS.get(endpoint)
        if spec is None:
            return plain(404, "404 page not found")
        if request.method != spec.method:
            return plain(405, "405 method not allowed")
        return dispatch(sandbox, endpoint, spec)

    register_portal(app, sandbox)
    register_control(app, sandbox)
    register_inspection(app, sandbox)
    return app


def dispatch(sandbox: Sandbox, endpoint: str, spec: Any) -> Response:
    tunables = sandbox.tunables
    entry: dict[str, Any] = {"time": time.time(), "method": request.method, "path": request.path}
    if tunables.latency_ms:
        time.sleep(tunables.latency_ms / 1000)
    fault = sandbox.draw_fault(endpoint)
    if fault == "drop":
        sandbox.log({**entry, "code": None, "http_status": None, "fault": "drop"})
        drop_connection()
    if fault == "html_502":
        sandbox.log({**entry, "code": None, "http_status": 502, "fault": "html_502"})
        return Response(HTML_502, status=502, mimetype="text/html")
    if fault == "error":
        sandbox.log({**entry, "code": SERVER_ERROR, "http_status": 200, "fault": "error"})
        return envelope(SERVER_ERROR, "Internal service error, please try again later.")

    call = Call(sandbox=sandbox, params={}, log=entry)
    request_key = None
    try:
        call.params, call.files, raw = read_params(spec.body)
        app_id = authenticate(sandbox, call, spec.needs_token)
        limit = sandbox.admit(app_id) if app_id else None
        if limit == "qps":
            raise ApiError(RATE_LIMITED, "Too many requests: the app's QPS limit was reached.")
        if limit == "qpm":
            raise ApiError(
                FREQUENCY_LIMITED,
                "Request frequency limited: the app's per-minute limit was reached.",
            )
        if endpoint in DEDUPLICATED and sandbox.tunables.duplicate_window_s > 0:
            request_key = (app_id or "", endpoint, hashlib.sha256(raw).hexdigest())
            if sandbox.seen_recently(request_key):
                raise ApiError(
                    DUPLICATED_REQUEST,
                    "Duplicated request: an identical request was received recently.",
                )
        data = spec.handler(call)
    except ApiError as error:
        sandbox.log({**entry, "code": error.code, "http_status": 200, "message": error.message})
        return envelope(error.code, error.message)
    if request_key is not None:
        sandbox.remember(request_key)
    if fault == "drop_answer":
        # TikTok did the work; the answer never arrives (a timeout or a reset connection).
        sandbox.log({**entry, "code": 0, "http_status": None, "fault": "drop_answer"})
        drop_connection()
    if fault == "partial_ok":
        sandbox.log({**entry, "code": PARTIAL_OK, "http_status": 200, "fault": "partial_ok"})
        return envelope(PARTIAL_OK, "Partial success.", data)
    sandbox.log({**entry, "code": 0, "http_status": 200})
    return envelope(0, "OK", data)


def drop_connection() -> None:
    sock = request.environ.get("werkzeug.socket")
    if sock is not None:
        sock.shutdown(socket.SHUT_RDWR)
    raise DropConnection("connection dropped on purpose")


def read_params(body: str) -> tuple[dict[str, Any], dict[str, Any], bytes]:
    """(params, files, the raw JSON body: b"" for query and multipart requests)."""
    if body == "query":
        return request.args.to_dict(), {}, b""
    if body == "multipart":
        if not request.mimetype.startswith("multipart/form-data"):
            raise ApiError(INVALID_REQUEST, "Content-Type must be multipart/form-data.")
        return request.form.to_dict(), request.files.to_dict(), b""
    if request.mimetype != "application/json":
        raise ApiError(INVALID_REQUEST, "Content-Type must be application/json.")
    raw = request.get_data(cache=False)
    try:
        # Not orjson: on a 10,000-person body (4.7 MB, 40,000 small objects) it measured no
        # faster here; building the Python objects, not parsing, is the cost.
        params = json.loads(raw)
    except ValueError:
        raise ApiError(INVALID_REQUEST, "The request body is not valid JSON.") from None
    if not isinstance(params, dict):
        raise ApiError(INVALID_REQUEST, "The request body must be a JSON object.")
    return params, {}, raw


def authenticate(sandbox: Sandbox, call: Call, needs_token: bool) -> str | None:
    """Check the Access-Token header; return the app the request counts against."""
    if not needs_token:
        app_id = call.params.get("app_id")
        return app_id if isinstance(app_id, str) and sandbox.config.app(app_id) else None
    header = request.headers.get("Access-Token", "").strip()
    if not header:
        raise ApiError(TOKEN_MISSING, "Access-Token is missing from the request header.")
    token = sandbox.store.token_get(header)
    if token is None or token.revoked:
        raise ApiError(TOKEN_INVALID, "Access-Token is invalid or has been revoked.")
    ttl = sandbox.tunables.token_ttl_s
    if ttl is not None and time.time() - token.created_at >= ttl:
        raise ApiError(TOKEN_EXPIRED, "Access-Token has expired.")
    call.token = token
    call.log["app_id"] = token.app_id
    return token.app_id


# --- the authorization (consent) page ---------------------------------------------------


def with_query(uri: str, params: dict[str, str]) -> str:
    parts = urlsplit(uri)
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def register_portal(app: Flask, sandbox: Sandbox) -> None:
    @app.route("/portal/auth", methods=["GET", "POST"])
    def portal_auth() -> Response | str:
        source = request.form if request.method == "POST" else request.args
        app_id = source.get("app_id", "")
        state = source.get("state", "")
        redirect_uri = source.get("redirect_uri", "")
        client = sandbox.config.app(app_id)
        if client is None:
            return _portal_error(f"There is no app with app_id “{app_id}”.")
        if redirect_uri not in sandbox.redirect_uris(app_id):
            return _portal_error(
                f"The redirect_uri “{redirect_uri}” is not registered for {client.name}."
            )
        advertisers = sandbox.config.advertisers
        error = ""
        if request.method == "POST":
            if source.get("decision") == "cancel":
                return _redirect(
                    with_query(
                        redirect_uri,
                        {
                            "error": "access_denied",
                            "error_description": "The user denied the authorization request.",
                            "state": state,
                        },
                    )
                )
            known = {a.advertiser_id for a in advertisers}
            chosen = [a for a in request.form.getlist("advertiser_ids") if a in known]
            if chosen:
                code = sandbox.store.auth_code_create(app_id, chosen, redirect_uri)
                return _redirect(
                    with_query(redirect_uri, {"auth_code": code, "code": code, "state": state})
                )
            error = "Choose at least one advertiser account to authorize."
        response = Response(
            render_template(
                "portal_auth.html",
                client=client,
                advertisers=advertisers,
                state=state,
                redirect_uri=redirect_uri,
                error=error,
            )
        )
        response.headers["X-Frame-Options"] = "DENY"
        return response


def _portal_error(message: str) -> Response:
    return Response(render_template("portal_error.html", message=message), status=400)


def _redirect(location: str) -> Response:
    return Response("", status=302, headers={"Location": location})


# --- control and inspection (test and demo only) ----------------------------------------


def _json(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data), status=status, mimetype="application/json")


def register_control(app: Flask, sandbox: Sandbox) -> None:
    config = sandbox.config

    @app.get("/_sandbox/health/")
    def health() -> Response:
        return _json({"ok": True})

    @app.route("/_sandbox/control/<path:action>", methods=["GET", "POST"])
    @app.route("/_sandbox/control/", methods=["GET", "POST"], defaults={"action": ""})
    def control(action: str) -> Response:
        if not config.enable_control:
            return plain(404, "404 page not found")
        given = request.headers.get("X-Sandbox-Control", "")
        if not config.control_key or not secrets.compare_digest(given, config.control_key):
            return _json({"error": "the X-Sandbox-Control header is missing or wrong"}, 403)
        body = request.get_json(silent=True) or {}
        if not isinstance(body, dict):
            return _json({"error": "the body must be a JSON object"}, 400)
        try:
            return _json(_control_action(sandbox, action.strip("/"), request.method, body))
        except (ConfigError, KeyError, ValueError) as error:
            return _json({"error": str(error)}, 400)


def _control_action(sandbox: Sandbox, action: str, method: str, body: dict[str, Any]) -> Any:
    store = sandbox.store
    if action == "" and method == "GET":
        return sandbox.tunables.as_dict()
    if action == "":
        return sandbox.switch(body).as_dict()
    if action == "reset":
        sandbox.reset()
        return sandbox.tunables.as_dict()
    if action == "wipe":
        store.wipe()
        sandbox.reset()
        return {"wiped": True}
    if action == "revoke":
        if "token" in body:
            return {"revoked": int(store.token_revoke(str(body["token"])))}
        return {"revoked": store.tokens_revoke_for_advertiser(str(body["advertiser_id"]))}
    if action == "redirect_uri":
        app_id = str(body.get("app_id") or sandbox.config.apps[0].app_id)
        if sandbox.config.app(app_id) is None:
            raise ValueError(f"no app {app_id}")
        uri = str(body["uri"])
        if urlsplit(uri).scheme not in ("http", "https"):
            raise ValueError("uri must be an http(s) URL")
        store.register_redirect_uri(app_id, uri)
        return {"app_id": app_id, "redirect_uris": sorted(sandbox.redirect_uris(app_id))}
    if action == "token":
        app_id = str(body.get("app_id") or sandbox.config.apps[0].app_id)
        advertiser_ids = body.get("advertiser_ids") or [
            a.advertiser_id for a in sandbox.config.advertisers
        ]
        if sandbox.config.app(app_id) is None:
            raise ValueError(f"no app {app_id}")
        if not isinstance(advertiser_ids, list) or not all(
            isinstance(a, str) and sandbox.config.advertiser(a) for a in advertiser_ids
        ):
            raise ValueError("advertiser_ids must list configured advertiser ids (strings)")
        return {
            "access_token": store.token_create(app_id, advertiser_ids),
            "advertiser_ids": advertiser_ids,
        }
    raise ValueError(f"unknown control action {action!r}")


def register_inspection(app: Flask, sandbox: Sandbox) -> None:
    def guarded() -> Response | None:
        return None if sandbox.config.enable_inspection else plain(404, "404 page not found")

    @app.get("/_sandbox/inspect/advertisers/<advertiser_id>/audiences/")
    def inspect_audiences(advertiser_id: str) -> Response:
        from .api import audience_details

        return guarded() or _json(
            [audience_details(sandbox, a) for a in sandbox.store.audiences_of(advertiser_id)]
        )

    @app.get("/_sandbox/inspect/audiences/<audience_id>/members/")
    def inspect_members(audience_id: str) -> Response:
        if blocked := guarded():
            return blocked
        if not audience_id.isdigit() or sandbox.store.audience_get(audience_id) is None:
            return _json({"error": f"no audience {audience_id}"}, 404)
        with sandbox.store.lock:  # a concurrent mapping request must not resize the sets
            members = sandbox.store.members.get(audience_id)
            return _json(members.as_hex() if members else {})

    @app.get("/_sandbox/inspect/event_sets/<event_set_id>/events/")
    def inspect_events(event_set_id: str) -> Response:
        if blocked := guarded():
            return blocked
        if not event_set_id.isdigit():
            return _json({"error": "event set ids are digits"}, 404)
        return _json(sandbox.store.events_of(event_set_id))

    @app.get("/_sandbox/inspect/requests/")
    def inspect_requests() -> Response:
        return guarded() or _json(sandbox.request_log())
