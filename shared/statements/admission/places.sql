-- admission: what a new participant is admitted against (SPEC §14, Words), counted while the
-- experiment's row is held (lock_experiment.sql).
-- `participants`: each assignment with a session that is neither a test run nor excluded (test runs
-- have no assignment), and whether it occupies a place in its condition: a session completed with
-- outcome `completed`, or one not completed and inside its lease (from its latest activity, its start
-- or its latest response, under the lease of the configuration now).
-- `earlier`: the owners of sessions stored before the experiment was configured, admitted too
-- (counted only for a cap, count_earlier).
-- admitted: participants for maxParticipants; places: condition -> places occupied.
WITH participants AS (
    SELECT a.condition,
           bool_or(s.outcome = 'completed'
                   OR (s.completed_at IS NULL
                       AND greatest(s.created_at, c.last_response_at)
                           + CAST(:lease_minutes AS integer) * interval '1 minute' > now())) AS holds_place
    FROM assignments a
    JOIN sessions s ON s.assignment_id = a.id AND NOT s.test AND s.outcome IS DISTINCT FROM 'excluded'
    LEFT JOIN session_counts c ON c.session_id = s.id
    WHERE a.experiment_id = :experiment_id
    GROUP BY a.id, a.condition
), earlier AS (
    SELECT count(DISTINCT coalesce(s.user_id, CAST(s.guest_id AS text))) AS participants
    FROM sessions s
    WHERE CAST(:count_earlier AS boolean) AND s.experiment_id = :experiment_id
      AND s.created_at < (SELECT created_at FROM experiments WHERE id = :experiment_id) AND s.assignment_id IS NULL
      AND NOT s.test AND s.outcome IS DISTINCT FROM 'excluded'
)
SELECT (SELECT count(*) FROM participants) + (SELECT participants FROM earlier) AS admitted,
       coalesce((SELECT json_object_agg(condition, places)
                 FROM (SELECT condition, count(*) FILTER (WHERE holds_place) AS places
                       FROM participants WHERE condition IS NOT NULL GROUP BY condition) AS p), '{}') AS places
