"""Summaries of the shop's sales, shared by the functions through the `reporting` layer."""

from shop_report.summary import summarize

__all__ = ["summarize"]
