"""Where this library knowingly departs from Actionstep's published OpenAPI descriptions.

The generator (``tools/generate_models.py``) and the runtime both read these tables, so every
departure is listed once, here, with the reason. Each entry is a fact about the live API that
the YAMLs get wrong, or a compatibility promise this library made before it had the YAMLs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

__all__ = [
    "ATTRIBUTE_ALIASES",
    "BOOLEAN_NAME",
    "CONTENT_TYPE",
    "EXTRA_METHODS",
    "LINK_TARGETS",
    "MANY_LINKS",
    "SELF_LINKS",
    "UPDATE_METHOD",
]

CONTENT_TYPE: Final = "application/vnd.api+json"
"""Every YAML declares ``application/json``; the API wants the JSON API media type both ways."""

EXTRA_METHODS: Final[Mapping[str, frozenset[str]]] = MappingProxyType(
    {
        # The actions YAML offers only PATCH for updates; the API updates matters with PUT, as it
        # does every other resource. PATCH stays listed because the YAML documents it, and
        # ``client.request("PATCH", ...)`` sends it for anyone who needs it.
        "actions": frozenset({"PUT"}),
    }
)

UPDATE_METHOD: Final = "PUT"
"""The method accessors update with, on every resource (see EXTRA_METHODS for actions)."""

# Paths: the datacollections and datacollectionfields YAMLs put single records under a singular
# path (``/datacollection/{id}``); the API, like every other resource, uses the plural one. The
# catalogue therefore uses the collection path (the resource name) for every resource.
#
# List keys: a few YAMLs key the records or ``meta.paging`` of a list under another name
# (``QuickCodes``, ``UTBMSCodes``, ``actions`` in actiontypes, ``participants`` in bills and
# disbursements). Responses are keyed by the resource name; the generator ignores those keys.

# Write-only and phantom fields: a field documented only in a create or update schema (such as
# ``utbmsCode``) becomes a field of the model too, so a write can carry it; a name a create
# schema marks required but documents nowhere (``relationship`` in participantrelationshiptypes,
# whose property is ``relationshipType``) is not required, since no write could send it.

BOOLEAN_NAME: Final = re.compile(r"(is|has|can|allow|enable|show|track)[A-Z]\w*")
"""String fields named like flags are Actionstep's ``"T"``/``"F"`` booleans even where the YAML
gives no enum (``isDeleted``, ``isBillableOverride`` in actions, ...)."""

ATTRIBUTE_ALIASES: Final[Mapping[str, Mapping[str, str]]] = MappingProxyType(
    {
        # Before the YAMLs, the hand-written models read ``isBillable`` and ``dateOfBirth``; the
        # YAMLs name them ``isBillableOverride`` and ``birthTimestamp``. The models use the YAML
        # names and keep the old attribute as a read-only alias so existing code keeps working.
        "actions": MappingProxyType({"is_billable": "is_billable_override"}),
        "participants": MappingProxyType({"date_of_birth": "birth_timestamp"}),
    }
)

LINK_TARGETS: Final[Mapping[str, str]] = MappingProxyType(
    {
        # The YAMLs say what a link holds (an id) but not what it points to; these are the
        # resources Actionstep's link templates name for each link.
        "action": "actions",
        "actionType": "actiontypes",
        "assignedTo": "participants",
        "assignee": "participants",
        "billSettings": "actionbillsettings",
        "confirmedNonBillableBy": "participants",
        "createdBy": "participants",
        "currency": "currencies",
        "dataCollection": "datacollections",
        "dataCollectionField": "datacollectionfields",
        "dataCollectionRecord": "datacollectionrecords",
        "dataField": "datacollectionfields",
        "defaultRate": "rates",
        "division": "divisions",
        "document": "actiondocuments",
        "enteredByParticipant": "participants",
        "folder": "contactfolders",
        "fromContact": "participants",
        "fromParticipant": "participants",
        "incomeAccount": "accounts",
        "linkedDataCollection": "datacollections",
        "linkedDocumentTemplate": "documenttemplates",
        "mailingCountry": "countries",
        "owner": "participants",
        "participant": "participants",
        "participantDataField": "participanttypedatafields",
        "participantType": "participanttypes",
        "phoneRecord": "phonerecords",
        "physicalCountry": "countries",
        "primaryParticipantType": "participanttypes",
        "primaryParticipants": "participants",
        "quickCode": "quickcodes",
        "rate": "rates",
        "relatedActions": "actions",
        "salesTaxRate": "taxcodes",
        "step": "steps",
        "tag": "tags",
        "tags": "tags",
        "task": "tasks",
        "taxCode": "taxcodes",
        "template": "tasktemplates",
        "theirParticipant": "participants",
        "toContact": "participants",
        "toParticipant": "participants",
        "triggerDataCollection": "datacollections",
        "uom": "unitsofmeasure",
        "utbmsActivityCode": "utbmscodes",
        "utbmsTaskCode": "utbmscodes",
        "utbmsTimekeeperCode": "utbmscodes",
    }
)

MANY_LINKS: Final = frozenset({("actions", "primaryParticipants"), ("actions", "relatedActions")})
"""Links the YAML types as one id that the API sends as a list of ids."""

SELF_LINKS: Final = frozenset({"parentFolder"})
"""Links that point at another record of the same resource (a folder's parent folder)."""
