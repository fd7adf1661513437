"""Totals of a list of orders."""


def summarize(orders, currency):
    """Returns the number of orders and their total in cents, with the currency."""
    total = sum(order.get("cents", 0) for order in orders)
    return {"orders": len(orders), "total_cents": total, "currency": currency}
