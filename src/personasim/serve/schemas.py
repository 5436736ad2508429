"""The API's request and answer models: what is validated is what the OpenAPI doc states.

A request that names its user (or its items) one of several ways declares the choice
once, as a :class:`FieldChoice`: the same declaration refuses a bad request and writes
the ``oneOf``/``anyOf`` of the model's JSON Schema, so the two cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "ERROR_RESPONSES",
    "MAX_ITEMS",
    "ErrorBody",
    "ErrorDetail",
    "FieldChoice",
    "ItemsQuery",
    "NewItem",
    "RateAnswer",
    "SessionAnswer",
    "SessionQuery",
    "UserQuery",
    "WatchAnswer",
]

MAX_ITEMS = 200

ItemId = Annotated[str, Field(min_length=1, max_length=200)]


def _given(value: Any) -> bool:
    """Whether a request gave a field: not None, and not an empty list."""
    return value is not None and not (isinstance(value, list) and not value)


def _given_schema(field_schema: dict[str, Any]) -> dict[str, Any]:
    """JSON Schema of a given value of a field (see :func:`_given`), from the field's own
    schema: a non-empty list, or a value of the field's type other than null."""
    if field_schema.get("type") == "array":
        return {"minItems": 1}
    types = [
        s["type"] for s in field_schema.get("anyOf", [field_schema]) if s.get("type") != "null"
    ]
    return {"type": types[0]}


@dataclass(frozen=True)
class FieldChoice:
    """Alternative fields of a request, of which exactly one (or at least one) is given.

    Attributes:
        fields: The alternatives, by name.
        exactly_one: Exactly one is given (``oneOf``); else at least one (``anyOf``).
        message: What the refusal says.
    """

    fields: tuple[str, ...]
    exactly_one: bool
    message: str

    def check(self, request: BaseModel) -> None:
        """Refuse `request` (``ValueError``) unless it gives the fields as the rule says."""
        given = sum(_given(getattr(request, name)) for name in self.fields)
        if given == 0 or (self.exactly_one and given > 1):
            raise ValueError(self.message)

    def json_schema(self, properties: dict[str, Any]) -> dict[str, Any]:
        """The rule in JSON Schema, over the model's `properties`."""
        branches = [
            {"required": [name], "properties": {name: _given_schema(properties[name])}}
            for name in self.fields
        ]
        return {"oneOf" if self.exactly_one else "anyOf": branches}


def _state_choices(schema: dict[str, Any], model: type[Any]) -> None:
    """Write a request model's :attr:`UserQuery.choices` into its JSON Schema."""
    rules = [choice.json_schema(schema["properties"]) for choice in model.choices]
    if len(rules) == 1:
        schema.update(rules[0])
    elif rules:
        schema["allOf"] = rules


ONE_USER = FieldChoice(
    ("user_id", "profile"), exactly_one=True, message="give exactly one of user_id and profile"
)
"""Exactly one way to name the user."""

SOME_ITEMS = FieldChoice(
    ("item_ids", "items"),
    exactly_one=False,
    message="give item_ids, items (descriptions of new items), or both",
)
"""... and at least one item, by id or by description."""


class UserQuery(BaseModel):
    """A request about one user: a user of the run, or a cold-start user's profile."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_state_choices)

    choices: ClassVar[tuple[FieldChoice, ...]] = (ONE_USER,)
    """The request's field choices, checked in order and stated in its JSON Schema."""

    user_id: str | None = Field(None, min_length=1, max_length=200)
    """A simulated user of the run."""
    profile: str | None = Field(None, min_length=1, max_length=4000)
    """A cold-start user's profile text (placed in the nearest persona)."""

    @model_validator(mode="after")
    def _check_choices(self) -> UserQuery:
        for choice in self.choices:
            choice.check(self)
        return self


class NewItem(BaseModel):
    """An item the catalogue lacks, described by what the agents read of an item."""

    model_config = ConfigDict(extra="forbid")

    # a character that is whitespace to none of the schema's readers: Python's strip also
    # drops \x1c-\x1f and \x85, which JSON Schema's (ECMA) \s does not name
    title: str = Field(min_length=1, max_length=300, pattern=r"[^\s\x1c-\x1f\x85]")
    year: int | None = Field(None, ge=1800, le=2200)
    genres: list[Annotated[str, Field(min_length=1, max_length=60)]] = Field(
        default_factory=list, max_length=20
    )


class ItemsQuery(UserQuery):
    """A user and the items to score: catalogue ids, descriptions of new items, or both
    (the answers follow ``item_ids``, then ``items``)."""

    choices: ClassVar[tuple[FieldChoice, ...]] = (ONE_USER, SOME_ITEMS)

    item_ids: list[ItemId] = Field(default_factory=list, max_length=MAX_ITEMS)
    items: list[NewItem] = Field(default_factory=list, max_length=MAX_ITEMS)


class SessionQuery(UserQuery):
    """A user and the ranked list a recommender would show."""

    ranked_item_ids: list[ItemId] = Field(min_length=1, max_length=1000)
    page_size: int = Field(4, ge=1, le=50)
    max_pages: int = Field(5, ge=1, le=50)
    decisions: Literal["sample", "threshold"] = "sample"
    seed: int = 0


class RateAnswer(BaseModel):
    """Predicted ratings (expectations over the log's rating scale), the likeliest
    ratings, and the persona that answered."""

    user_id: str
    persona: str | None
    ratings: list[float]
    argmax: list[float]


class WatchAnswer(BaseModel):
    """Watch probabilities and the persona that answered."""

    user_id: str
    persona: str | None
    probabilities: list[float]


class SessionAnswer(BaseModel):
    """The simulated session: one event per item shown, and the summary."""

    user_id: str
    persona: str | None
    events: list[dict[str, Any]]
    session: dict[str, Any]


class ErrorDetail(BaseModel):
    """What went wrong: a stable code and a message for people."""

    code: str
    message: str


class ErrorBody(BaseModel):
    """Every error answer."""

    error: ErrorDetail


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text}
    for status, text in (
        (401, "missing or wrong API key"),
        (404, "unknown user or items"),
        (413, "request body too large"),
        (422, "invalid request"),
        (500, "internal error"),
        (503, "the agents are still loading (or failed to load)"),
    )
}
"""The error answers of the routes, for the OpenAPI doc."""
