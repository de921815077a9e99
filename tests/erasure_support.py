"""What a withdrawal must leave behind: nothing. These scans read every store
whole - every table, every Firestore collection, the whole bucket - rather than
asking the product, and report whatever still refers to the erased visitor."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from sqlalchemy import text

# The ledger keeps ids and numbers by design (SPEC §11): it is checked on its own. The researchers'
# trail (researcher_actions) is scanned like any table: an erase_visitor row names the erased number
# in its JSON details, by design (docs/researchers.md), which this scan does not count; no id.
LEDGER_TABLES = {"erasures", "erased_sessions", "schema_migrations"}


@dataclass
class Traces:
    """What identifies one visitor in the stores."""

    session_ids: set[str] = field(default_factory=set)
    numbers: set[int] = field(default_factory=set)
    ids: set[str] = field(default_factory=set)  # user ids, guest ids, key hashes (hex), emails

    def add_session(self, answer: dict) -> None:
        """A create_session answer: its session, number and ids."""
        self.session_ids.add(answer["sessionId"])
        if answer["visitorNumber"] is not None:
            self.numbers.add(answer["visitorNumber"])
        self.ids |= {value for value in (answer.get("userId"), answer.get("guestId")) if value}


def rows_left(db, traces: Traces) -> list[str]:
    """Every row of every product table that names one of the traces."""
    found = []
    with db.connect() as conn:
        tables = (
            conn.execute(
                text(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
                )
            )
            .scalars()
            .all()
        )
        for table in sorted(set(tables) - LEDGER_TABLES):
            columns = conn.execute(
                text(
                    "SELECT column_name, data_type FROM information_schema.columns "
                    "WHERE table_schema = 'public' AND table_name = :t"
                ),
                {"t": table},
            ).all()
            # visitor numbers (visitor_number, from_number, ...), not counts (session_counts.responses)
            number_columns = [
                c.column_name for c in columns if c.data_type == "bigint" and c.column_name.endswith("number")
            ]
            for row in conn.execute(text(f'SELECT t.*, row_to_json(t)::text AS "_json" FROM "{table}" t')):
                values = row._mapping
                as_text = values["_json"]
                named = [trace for trace in traces.session_ids | traces.ids if trace in as_text]
                numbered = [values[c] for c in number_columns if values[c] in traces.numbers]
                key_hashes = [v.hex() for v in values.values() if isinstance(v, (bytes, memoryview))]
                named += [h for h in key_hashes if h in traces.ids]
                if named or numbered:
                    found.append(f"{table}: {as_text}")
    return found


def documents_left(emulator, traces: Traces) -> list[str]:
    """Every document of the Firestore emulator, in any collection, that names one of the traces."""
    found = []
    for document in emulator.all_documents():
        fields = document["fields"]
        number = fields.get("visitorNumber", {}).get("integerValue")
        path = document["name"].split("/documents/", 1)[1]
        as_text = json.dumps(fields)
        if (
            any(session_id in as_text or session_id in path for session_id in traces.session_ids)
            or (number is not None and int(number) in traces.numbers)
            or path in {f"visitors/{n}" for n in traces.numbers}
        ):
            found.append(f"{path}: {as_text}")
    return found


def objects_left(storage_client, bucket_name: str, traces: Traces) -> list[str]:
    """Every object generation in the bucket under one of the traces' sessions."""
    return [
        f"{blob.name}#{blob.generation}"
        for blob in storage_client.list_blobs(bucket_name, versions=True)
        if any(blob.name.startswith(f"sessions/{s}/") for s in traces.session_ids)
    ]


def everything_left(db, firestore_emulator, storage_client, bucket_name: str, traces: Traces) -> list[str]:
    return (
        rows_left(db, traces)
        + documents_left(firestore_emulator, traces)
        + objects_left(storage_client, bucket_name, traces)
    )
