"""The JSON body of ``bench.request_path``'s body scenario, shared by the FrameX plugin and plain FastAPI."""

from pydantic import BaseModel


class Order(BaseModel):
    """Five fields, one of each common JSON kind."""

    name: str
    quantity: int
    price: float
    paid: bool
    items: list[int]


SAMPLE = {"name": "widget", "quantity": 3, "price": 2.5, "paid": True, "items": [1, 2, 3, 4, 5]}
"""What the load generator posts."""


def summary(order: Order) -> dict[str, object]:
    """The small dict every app answers with: a few values computed from every field."""
    return {"name": order.name, "total": order.quantity * order.price, "items": len(order.items), "paid": order.paid}
