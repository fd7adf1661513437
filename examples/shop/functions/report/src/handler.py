"""Layers: reporting (the shop_report package, settings at /opt/config), then shared."""

import json

from shop_report import summarize

SETTINGS = "/opt/config/settings.json"


def main(event, context):
    with open(SETTINGS, encoding="utf-8") as file:
        settings = json.load(file)
    summary = summarize(event.get("orders", []), settings["currency"])
    return {"title": settings["report_title"], **summary}
