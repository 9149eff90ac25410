"""Seeded, lazily generated records and the per-resource tables that hold them.

Record ``i`` of a seeded resource is a pure function of ``(seed, resource, i)``, so a table of
100,000 actions costs nothing until a page of it is read, and two fakes with the same seed serve
byte-identical data. Writes are layered on top (updated, created and deleted keys) so the seeded
part never has to be materialised just because one record changed.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, Final, TypeVar

import attrs

from .._catalogue import CATALOGUE, FieldSpec, ResourceSpec

__all__ = [
    "DEFAULT_RECORDS",
    "SEEDED_RESOURCES",
    "Key",
    "RawRecord",
    "ResourceSchema",
    "Table",
    "now_timestamp",
    "schema_for",
    "stamp_write",
]

T = TypeVar("T")
RawRecord = dict[str, Any]
Key = int | str
"""A primary key: an int for ordinary resources, a ``a--b--c`` string for composite ones."""

AEST: Final = timezone(timedelta(hours=10))
_EPOCH: Final = datetime(2021, 1, 4, 9, 0, tzinfo=AEST)
_THREE_YEARS: Final = 3 * 365 * 86400

_FIRST: Final = (
    "Olivia", "Jack", "Charlotte", "William", "Amelia", "Noah", "Isla", "Thomas", "Mia", "James",
    "Grace", "Lucas", "Chloe", "Henry", "Zara", "Oliver", "Ava", "Leo", "Ruby", "Samuel",
)  # fmt: skip
_LAST: Final = (
    "Smith", "Nguyen", "Williams", "Brown", "Wilson", "Taylor", "Johnson", "White", "Martin",
    "Anderson", "Thompson", "Tran", "Walker", "Harris", "Lee", "Ryan", "Robinson", "Kelly", "King",
    "O'Brien",
)  # fmt: skip
_STREETS: Final = ("George St", "Queen St", "Collins St", "Bay Rd", "Main Rd", "Ocean Pde")
_COMPANIES: Final = ("Holdings", "Pty Ltd", "Group", "Partners", "Trust", "Investments")
_MATTER_TYPES: Final = (
    "Conveyancing - Purchase", "Conveyancing - Sale", "Litigation - Commercial", "Family Law",
    "Wills and Estates", "Employment", "Leasing - Commercial", "Debt Recovery",
    "Criminal Law", "Immigration", "Personal Injury", "Corporate Advisory",
)  # fmt: skip
_NOTES: Final = (
    "Client called about settlement date", "Sent draft contract for review",
    "Left voicemail for the other side", "Received signed authority",
    "Discussed costs estimate with client", "Searches ordered", "File reviewed by principal",
    "Court date confirmed", "Emailed title documents", "Meeting notes: next steps agreed",
)  # fmt: skip
_ACTIVITIES: Final = (
    "Drafting", "Telephone attendance", "Perusal", "Correspondence", "Court attendance",
    "Conference with client", "Research",
)  # fmt: skip
_STATUSES: Final = ("Active", "Active", "Active", "Closed", "Inactive")


_MASK: Final = (1 << 64) - 1


class Dice:
    """A tiny splitmix64 generator. ``random.Random`` costs ~5 us to seed and ~2 us per draw;
    seeding one per record made a cold 200-record page of a big table take most of our 10 ms
    budget. Same subset of the API, a fraction of the cost, and stable across Python versions."""

    __slots__ = ("_state",)

    def __init__(self, seed: int) -> None:
        self._state = seed & _MASK

    def _next(self) -> int:
        self._state = state = (self._state + 0x9E3779B97F4A7C15) & _MASK
        z = ((state ^ (state >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        return z ^ (z >> 31)

    def randrange(self, start: int, stop: int | None = None) -> int:
        low, high = (0, start) if stop is None else (start, stop)
        return low + self._next() % (high - low)

    def choice(self, items: Sequence[T]) -> T:
        return items[self._next() % len(items)]

    def random(self) -> float:
        return (self._next() >> 11) / float(1 << 53)

    def rolls(self, *sizes: int) -> list[int]:
        """One uniform int below each size, sharing 64-bit draws: a record needs a dozen small
        choices, and one draw per choice was most of the cost of generating it."""
        bits, room = self._next(), 1 << 64
        result: list[int] = []
        for size in sizes:
            if room < size << 20:  # keep the modulo bias below one in a million
                bits, room = self._next(), 1 << 64
            bits, value = divmod(bits, size)
            room //= size
            result.append(value)
        return result


def timestamp(moment: datetime) -> str:
    """ISO-8601 with the org's +10:00 offset and no fraction, as Actionstep renders times."""
    return moment.astimezone(AEST).replace(microsecond=0).isoformat()


def now_timestamp() -> str:
    """The current time in the fake organisation's time zone."""
    return timestamp(datetime.now(AEST))


MODIFIED_FIELD: Final = "modifiedTimestamp"


def stamp_write(record: RawRecord, field: str | None = MODIFIED_FIELD) -> None:
    """Move the record's modified timestamp to now, as the server does on every write.

    The server owns this field: a value sent in the body is overwritten, so "modified since"
    filters see every write. Resolution is one second, as Actionstep renders it, so several
    writes within a second share a timestamp (clients must use ``_gteq`` and an overlap).
    """
    if field is not None and field in record:
        record[field] = now_timestamp()


def _tf(flag: bool) -> str:
    return "T" if flag else "F"


def _link(rng: Dice, count: int) -> str:
    # Link ids are strings on the wire; a dangling "1" beats a missing key when a table is empty.
    return str(rng.randrange(count) + 1) if count > 0 else "1"


@attrs.frozen
class Context:
    """What a generator needs to know about the other tables so links stay in range."""

    counts: Mapping[str, int]

    def count(self, resource: str) -> int:
        return self.counts.get(resource, 0)


Generator = Callable[[Dice, int, Context], RawRecord]


@functools.lru_cache(maxsize=4096)
def _day(day: int) -> str:
    return (_EPOCH.date() + timedelta(days=day)).isoformat()


def _stamp(seconds: int) -> str:
    # Formatting by hand from a cached date is ~5x faster than datetime arithmetic + isoformat,
    # and seeded records are generated on the request path.
    day, rest = divmod(seconds + _EPOCH.hour * 3600, 86400)
    hours, rest = divmod(rest, 3600)
    return f"{_day(day)}T{hours:02d}:{rest // 60:02d}:{rest % 60:02d}+10:00"


def _dates(rng: Dice) -> tuple[str, str]:
    created, later = rng.rolls(_THREE_YEARS, 90 * 86400)
    return _stamp(created), _stamp(created + later)


def _action(rng: Dice, index: int, ctx: Context) -> RawRecord:
    ident = index + 1
    types, people = max(ctx.count("actiontypes"), 1), max(ctx.count("participants"), 1)
    (first, last, other, kind, number, street, priority, status, flags, step) = rng.rolls(
        len(_FIRST), len(_LAST), len(_LAST), 3, 399, len(_STREETS), 4, len(_STATUSES), 1000, 5
    )
    action_type, assigned, primary = rng.rolls(types, people, people)
    first_name, last_name = _FIRST[first], _LAST[last]
    if kind == 0:
        name = f"{last_name} v {_LAST[other]}"
    elif kind == 1:
        name = f"Purchase of {number + 1} {_STREETS[street]} - {first_name} {last_name}"
    else:
        name = f"Estate of the late {first_name} {last_name}"
    created, modified = _dates(rng)
    return {
        "id": ident,
        "name": name,
        "reference": f"{last_name[:3].upper()}{ident:06d}",
        "priority": priority,
        "status": _STATUSES[status],
        "isBillableOverride": _tf(flags % 10 != 0),
        "isDeleted": _tf(flags % 50 == 1),
        "isFavorite": _tf(flags // 100 == 3),
        "createdTimestamp": created,
        "modifiedTimestamp": modified,
        "links": {
            "actionType": str(action_type + 1),
            "assignedTo": str(assigned + 1),
            "primaryParticipants": [str(primary + 1)],
            "step": f"{action_type + 1}--{step + 1}",
        },
    }


def _participant(rng: Dice, index: int, ctx: Context) -> RawRecord:
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    company = rng.random() < 0.2
    created, modified = _dates(rng)
    company_name = f"{last} {rng.choice(_COMPANIES)}" if company else None
    return {
        "id": index + 1,
        "displayName": company_name or f"{last}, {first}",
        "isCompany": _tf(company),
        "companyName": company_name,
        "firstName": None if company else first,
        "lastName": None if company else last,
        "email": f"{first}.{last}{index + 1}@example.com".lower().replace("'", ""),
        "phone1Number": f"04{rng.randrange(10**8):08d}",
        "physicalAddressLine1": f"{rng.randrange(1, 400)} {rng.choice(_STREETS)}",
        "createdTimestamp": created,
        "modifiedTimestamp": modified,
        "links": {},
    }


def _filenote(rng: Dice, index: int, ctx: Context) -> RawRecord:
    entered, _ = _dates(rng)
    return {
        "id": index + 1,
        "text": rng.choice(_NOTES),
        "enteredTimestamp": entered,
        "noteTimestamp": entered,
        "enteredBy": f"{rng.choice(_LAST)}, {rng.choice(_FIRST)}",
        "source": "User",
        "links": {
            "action": _link(rng, ctx.count("actions")),
            "participant": _link(rng, ctx.count("participants")),
        },
    }


def _timerecord(rng: Dice, index: int, ctx: Context) -> RawRecord:
    entered, _ = _dates(rng)
    quarter_hours = rng.randrange(1, 33)
    hours = f"{quarter_hours / 4:.2f}"
    return {
        "id": index + 1,
        "description": rng.choice(_ACTIVITIES),
        "timestampDate": entered[:10],
        "actualHours": hours,
        "billableHours": hours,
        "billableAmount": f"{quarter_hours * 82.5:.2f}",
        "isBillable": _tf(rng.random() < 0.85),
        "createdTimestamp": entered,
        "links": {
            "action": _link(rng, ctx.count("actions")),
            "participant": _link(rng, ctx.count("participants")),
        },
    }


def _actiontype(rng: Dice, index: int, ctx: Context) -> RawRecord:
    base = _MATTER_TYPES[index % len(_MATTER_TYPES)]
    lap = index // len(_MATTER_TYPES)
    return {
        "id": index + 1,
        "name": base if lap == 0 else f"{base} ({lap + 1})",
        "description": f"Standard {base.lower()} workflow",
        "isDisabled": _tf(rng.random() < 0.05),
        "links": {"primaryParticipantType": str(rng.randrange(1, 30))},
    }


def _actionparticipant_parts(index: int, ctx: Context) -> tuple[int, int, int]:
    # (action, participantType) pairs are distinct for distinct indexes, so the composite id is
    # unique however the counts compare.
    actions = max(ctx.count("actions"), 1)
    participants = max(ctx.count("participants"), 1)
    return index % actions + 1, index // actions + 1, (index * 7919) % participants + 1


def _actionparticipant(rng: Dice, index: int, ctx: Context) -> RawRecord:
    action, participant_type, participant = _actionparticipant_parts(index, ctx)
    return {
        "id": f"{action}--{participant_type}--{participant}",
        "participantNumber": rng.randrange(1, 4),
        "links": {
            "action": str(action),
            "participantType": str(participant_type),
            "participant": str(participant),
        },
    }


def _user(rng: Dice, index: int, ctx: Context) -> RawRecord:
    return {
        "id": index + 1,
        "emailAddress": f"user{index + 1}@example.com",
        "isActive": "T",
        "links": {"participant": str(index + 1)},
    }


@attrs.frozen
class ResourceSchema:
    """Field names, link types and (for seeded resources) the record generator of a resource."""

    name: str
    fields: tuple[str, ...] = ()
    link_types: Mapping[str, str] = attrs.field(factory=dict)
    generator: Generator | None = None
    composite_links: tuple[str, ...] = ()
    """For composite-id resources: the link fields whose values, joined by ``--``, form the id."""
    spec: ResourceSpec | None = None
    """The catalogue entry: writes are validated against it and only its methods are served."""
    modified_field: str | None = "modifiedTimestamp"
    """The last-modified timestamp a write moves, if the resource has one."""

    @property
    def typed(self) -> bool:
        """True for resources with a known field set (unknown filter fields are then a 400)."""
        return self.generator is not None

    def known(self, field: str) -> bool:
        return field in self.fields or field in self.link_types


def _schema(
    name: str,
    generator: Generator | None,
    link_types: Mapping[str, str],
    composite: tuple[str, ...] = (),
) -> ResourceSchema:
    spec = CATALOGUE.get(name)
    if spec is not None:
        generator = _documented(spec, generator)
        link_types = {**{link.wire: str(link.target) for link in spec.links}, **link_types}
    assert generator is not None
    sample = generator(Dice(0), 0, Context({}))
    fields = tuple(k for k in sample if k != "links")
    modified = spec.modified_field if spec is not None else "modifiedTimestamp"
    return ResourceSchema(name, fields, dict(link_types), generator, composite, spec, modified)


# -- every catalogue resource: values for every documented field --------------------------------

Maker = Callable[[Dice, int, Context], object]


def _text_maker(field: FieldSpec) -> Maker:
    wire = field.wire
    lowered = wire.lower()
    if "email" in lowered:
        return lambda rng, i, ctx: f"{lowered}{i + 1}@example.com"
    if "url" in lowered:
        return lambda rng, i, ctx: f"https://example.com/{wire}/{i + 1}"
    return lambda rng, i, ctx: f"{wire} {i + 1}"


def _maker(field: FieldSpec) -> Maker:
    """A deterministic wire value for one documented field."""
    kind = field.kind
    if kind == "int":
        return lambda rng, i, ctx: rng.randrange(1, 1000)
    if kind == "bool":
        return lambda rng, i, ctx: "T" if rng.randrange(2) else "F"
    if kind in ("decimal", "float"):
        return lambda rng, i, ctx: f"{rng.randrange(0, 100000) / 100:.2f}"
    if kind == "date":
        return lambda rng, i, ctx: _day(rng.randrange(0, 1500))
    if kind == "datetime":
        return lambda rng, i, ctx: _stamp(rng.randrange(_THREE_YEARS))
    if kind == "enum":
        values = field.enum
        return lambda rng, i, ctx: rng.choice(values)
    return _text_maker(field)


def _link_maker(link: FieldSpec) -> Maker:
    target = str(link.target)

    def make(rng: Dice, index: int, ctx: Context) -> object:
        # Ids of seeded resources point at records that exist; others are small numbers.
        count = ctx.count(target) or 20
        first = str(rng.randrange(count) + 1)
        return [first, str(rng.randrange(count) + 1)] if link.many else first

    return make


def _documented(spec: ResourceSpec, hand: Generator | None) -> Generator:
    """A generator filling every documented field. ``hand`` (if any) runs first and supplies
    realistic values for the fields it knows, so its records keep the values they had."""
    makers = [(f.wire, _maker(f)) for f in spec.fields if f.wire != "id"]
    links = [(link.wire, _link_maker(link)) for link in spec.links]
    ids = [f for f in spec.fields if f.wire == "id"]
    string_id = bool(ids) and ids[0].kind == "str"

    def generate(rng: Dice, index: int, ctx: Context) -> RawRecord:
        given = hand(rng, index, ctx) if hand is not None else {}
        record: RawRecord = {}
        if ids or "id" in given:
            record["id"] = given.get("id", str(index + 1) if string_id else index + 1)
        for wire, make in makers:
            record[wire] = given[wire] if wire in given else make(rng, index, ctx)
        for wire, value in given.items():
            record.setdefault(wire, value)
        given_links = given.get("links") or {}
        record["links"] = {wire: make(rng, index, ctx) for wire, make in links}
        record["links"].update(given_links)
        return record

    return generate


_SCHEMAS: Final = {
    schema.name: schema
    for schema in (
        _schema(
            "actions",
            _action,
            {
                "actionType": "actiontypes",
                "assignedTo": "participants",
                "primaryParticipants": "participants",
                "step": "steps",
            },
        ),
        _schema("participants", _participant, {}),
        _schema("filenotes", _filenote, {"action": "actions", "participant": "participants"}),
        _schema("timerecords", _timerecord, {"action": "actions", "participant": "participants"}),
        _schema("actiontypes", _actiontype, {"primaryParticipantType": "participanttypes"}),
        _schema(
            "actionparticipants",
            _actionparticipant,
            {
                "action": "actions",
                "participantType": "participanttypes",
                "participant": "participants",
            },
            composite=("action", "participantType", "participant"),
        ),
        _schema("users", _user, {"participant": "participants"}),
    )
}
for _name in CATALOGUE:
    if _name not in _SCHEMAS:
        _SCHEMAS[_name] = _schema(_name, None, {})

SEEDED_RESOURCES: Final = tuple(_SCHEMAS)
DEFAULT_RECORDS: Final[Mapping[str, int]] = {
    **dict.fromkeys(CATALOGUE, 20),
    "actions": 50,
    "participants": 50,
    "filenotes": 50,
    "timerecords": 50,
    "actiontypes": 12,
    "actionparticipants": 50,
    "users": 1,
}


def schema_for(resource: str) -> ResourceSchema:
    """The schema of a seeded resource, or an empty one for the generic store."""
    return _SCHEMAS.get(resource) or ResourceSchema(resource)


def _salt(resource: str) -> int:
    return zlib.crc32(resource.encode())


class Table:
    """One resource's records: a seeded prefix generated on demand plus in-memory writes."""

    def __init__(self, schema: ResourceSchema, count: int, seed: int, ctx: Context) -> None:
        self.schema = schema
        self._count = count if schema.generator is not None else 0
        self._seed = seed
        self._ctx = ctx
        self._cache: dict[int, RawRecord] = {}
        self._changed: dict[Key, RawRecord] = {}
        self._deleted: set[Key] = set()
        self._created: dict[Key, RawRecord] = {}
        self._composite_index: dict[str, int] | None = None
        self._keys: Sequence[Key] | None = None
        self._next_id = self._count + 1
        self._added: dict[str, object] = {}

    @property
    def name(self) -> str:
        return self.schema.name

    def _generate(self, index: int) -> RawRecord:
        record = self._cache.get(index)
        if record is None:
            assert self.schema.generator is not None
            rng = Dice((self._seed * 0x9E3779B97F4A7C15) ^ (_salt(self.name) << 32) ^ index)
            record = self.schema.generator(rng, index, self._ctx)
            if self._added:
                record.update(self._added)
            self._cache[index] = record
        return record

    def _seeded_key(self, index: int) -> Key:
        if self.schema.composite_links:
            return str(self._generate(index)["id"])
        return index + 1

    def _seeded_index(self, key: Key) -> int | None:
        if self.schema.composite_links:
            if self._composite_index is None:
                self._composite_index = {
                    str(self._generate(i)["id"]): i for i in range(self._count)
                }
            return self._composite_index.get(str(key))
        if isinstance(key, int) and 1 <= key <= self._count:
            return key - 1
        return None

    def parse_key(self, text: str) -> Key | None:
        """A path id as this table's key type, or None if it can never match."""
        if self.schema.composite_links:
            return text
        return int(text) if text.isdigit() and len(text) < 19 else None

    def keys(self) -> Sequence[Key]:
        """Live keys in id order. Unmodified seeded tables answer with a range: no scan, no list."""
        if self._keys is None:
            if not self._deleted and not self._created and not self.schema.composite_links:
                self._keys = range(1, self._count + 1)
            else:
                seeded = (self._seeded_key(i) for i in range(self._count))
                self._keys = [k for k in seeded if k not in self._deleted]
                self._keys.extend(self._created)
        return self._keys

    def __len__(self) -> int:
        return len(self.keys())

    def get(self, key: Key) -> RawRecord | None:
        if key in self._deleted:
            return None
        changed = self._changed.get(key)
        if changed is not None:
            return changed
        index = self._seeded_index(key)
        if index is not None:
            return self._generate(index)
        return self._created.get(key)

    def records(self, keys: Sequence[Key] | None = None) -> Iterator[RawRecord]:
        for key in self.keys() if keys is None else keys:
            record = self.get(key)
            if record is not None:
                yield record

    def create(self, body: Mapping[str, Any]) -> RawRecord:
        record = self._template()
        record.update({k: v for k, v in body.items() if k not in ("id", "links")})
        record["links"] = {**record.get("links", {}), **_normalise_links(body.get("links"))}
        stamp = now_timestamp()
        for name in ("createdTimestamp", "enteredTimestamp", "noteTimestamp"):
            if name in record and record[name] is None:
                record[name] = stamp
        stamp_write(record, self.schema.modified_field)
        if self.schema.composite_links:
            parts = [str(record["links"].get(f) or "0") for f in self.schema.composite_links]
            key: Key = "--".join(parts)
            if self.get(key) is not None:
                raise KeyError(key)
        else:
            key = self._next_id
            self._next_id += 1
        record["id"] = key
        self._created[key] = record
        self._keys = None
        return record

    def update(self, key: Key, body: Mapping[str, Any]) -> RawRecord | None:
        current = self.get(key)
        if current is None:
            return None
        record = {**current, **{k: v for k, v in body.items() if k not in ("id", "links")}}
        # Link arrays are replaced wholesale, as the real API does; other links merge by name.
        record["links"] = {**current.get("links", {}), **_normalise_links(body.get("links"))}
        stamp_write(record, self.schema.modified_field)
        if key in self._created:
            self._created[key] = record
        else:
            self._changed[key] = record
        return record

    def delete(self, key: Key) -> bool:
        if self.get(key) is None:
            return False
        self._created.pop(key, None)
        self._changed.pop(key, None)
        if self._seeded_index(key) is not None:
            self._deleted.add(key)
        self._keys = None
        return True

    def add_field(self, name: str, value: object) -> None:
        """A field the API starts sending (a new release): every record gains it, now and later.

        Not a write: modified timestamps stay put, as they would after a server upgrade.
        """
        if name in ("id", "links") or self.schema.known(name):
            raise ValueError(f"{self.name} already has a field {name!r}")
        self.schema = attrs.evolve(self.schema, fields=(*self.schema.fields, name))
        self._added[name] = value
        for stored in (self._cache, self._changed, self._created):
            for record in stored.values():
                record.setdefault(name, value)

    def _template(self) -> RawRecord:
        template: RawRecord = dict.fromkeys(self.schema.fields)
        template.update(self._added)
        template["links"] = dict.fromkeys(self.schema.link_types)
        for flag in ("isDeleted", "isFavorite", "isCompany", "isDisabled"):
            if flag in template:
                template[flag] = "F"
        return template


def _normalise_links(links: object) -> dict[str, Any]:
    # Clients send link ids as numbers or strings; the API always answers with strings.
    if not isinstance(links, Mapping):
        return {}
    result: dict[str, Any] = {}
    for name, value in links.items():
        if isinstance(value, list):
            result[str(name)] = [str(item) for item in value]
        elif value is None:
            result[str(name)] = None
        else:
            result[str(name)] = str(value)
    return result
