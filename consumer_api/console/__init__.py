"""The web console: a page of its own at ``/console/`` that calls the same HTTP API as any
client (so rights, errors and limits are the API's). Its files are package data in
``static/``: hand-written JavaScript, CSS and SVG charts, no build step and no request to
any other host."""
from __future__ import annotations

from flask import Blueprint, redirect, send_from_directory, url_for

bp = Blueprint("console", __name__, static_folder="static", static_url_path="/console/static")


@bp.get("/")
def site_root():
    """A browser pointed at the server lands on the console (Swagger UI is a link there)."""
    return redirect(url_for("console.page"), code=302)


@bp.get("/console")
def console_root():
    return redirect(url_for("console.page"), code=308)


@bp.get("/console/")
def page():
    response = send_from_directory(bp.static_folder, "index.html")
    response.headers["Cache-Control"] = "no-cache"
    return response
