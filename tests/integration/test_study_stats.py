"""shared.research.stats against the stack's PostgreSQL: the level funnel at the edges of how
the study counters carry levels (bits for 0-62, an array above; sql/010_study_counters.sql),
and a scope's sessions only."""

from sqlalchemy import text

from shared.research import stats
from shared.research.researchers import Scope


def session_with_levels(conn, experiment: str, levels: list[int]) -> None:
    session = conn.execute(
        text(
            "INSERT INTO sessions (id, experiment_id, visitor_number) "
            "VALUES (gen_random_uuid(), :e, nextval('visitor_number_seq')) RETURNING id"
        ),
        {"e": experiment},
    ).scalar_one()
    for level in levels:
        conn.execute(
            text("INSERT INTO responses (id, session_id, level, data) VALUES (gen_random_uuid(), :s, :l, '{}')"),
            {"s": session, "l": level},
        )


def test_the_funnel_over_every_range_of_levels(db):
    with db.begin() as conn:
        session_with_levels(conn, "x", [0, 5, 62])
        session_with_levels(conn, "x", [0, 63, 100, 2147483647])
        session_with_levels(conn, "x", [62, 62])
        session_with_levels(conn, "x", [])  # no responses: in no level
        session_with_levels(conn, "y", [7])
        conn.execute(
            text(
                "INSERT INTO responses (id, session_id, level, data) "  # a response without a level
                "SELECT gen_random_uuid(), id, NULL, '1' FROM sessions WHERE experiment_id = 'y'"
            )
        )
    answer = stats.study_stats(db, Scope(everything=True))
    x, y = answer["experiments"]
    assert x["levels"] == [
        {"level": 0, "sessions": 3},
        {"level": 5, "sessions": 3},
        {"level": 62, "sessions": 3},
        {"level": 63, "sessions": 1},
        {"level": 100, "sessions": 1},
        {"level": 2147483647, "sessions": 1},
    ]
    assert (x["sessions"], x["responses"]) == (4, 9)
    assert y["levels"] == [{"level": 7, "sessions": 1}] and y["responses"] == 2
    only_y = stats.study_stats(db, Scope(everything=False, experiments=("y",)))
    assert [e["experimentId"] for e in only_y["experiments"]] == ["y"]
    assert only_y["experiments"][0] == y
