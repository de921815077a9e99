-- Admission (SPEC §14.1-14.2): what a new participant of a configured experiment is admitted
-- against, counted while the experiment's row is held (shared/statements/admission/).

-- The experiment's participants and their places (SPEC §14, Words), as JSON
-- {"admitted": n, "places": {condition: n, ...}}, for admission's participant_*.sql statements.
-- One pass over the experiment's sessions (sessions_experiment_created_idx): each assignment with a
-- session that is neither a test run nor excluded is a participant, and occupies a place in its
-- condition while one of those sessions is completed with outcome `completed`, or is not completed
-- and inside its lease: started, or answered (session_counts.last_response_at, read only for a
-- session started before the lease), within lease_minutes (the configuration's now). With
-- count_earlier (an experiment with a cap), the owners of sessions stored before the experiment was
-- configured (no assignment) are participants too. Its cost grows with the experiment's sessions:
-- bench/studies_admission.py measures it.
CREATE FUNCTION experiment_places(experiment TEXT, lease_minutes INTEGER, count_earlier BOOLEAN) RETURNS json
LANGUAGE sql STABLE AS $$
    WITH participants AS (
        SELECT s.assignment_id, s.condition,
               bool_or(s.outcome = 'completed'
                       OR (s.completed_at IS NULL
                           AND (s.created_at > now() - lease_minutes * interval '1 minute'
                                OR EXISTS (SELECT 1 FROM session_counts c
                                           WHERE c.session_id = s.id
                                             AND c.last_response_at > now() - lease_minutes * interval '1 minute'))))
                   AS holds_place
        FROM sessions s
        WHERE s.experiment_id = experiment AND s.assignment_id IS NOT NULL
          AND NOT s.test AND s.outcome IS DISTINCT FROM 'excluded'
        GROUP BY s.assignment_id, s.condition
    ), earlier AS (
        SELECT count(DISTINCT coalesce(s.user_id, CAST(s.guest_id AS text))) AS participants
        FROM sessions s
        WHERE count_earlier AND s.experiment_id = experiment
          AND s.created_at < (SELECT created_at FROM experiments WHERE id = experiment)
          AND s.assignment_id IS NULL AND NOT s.test AND s.outcome IS DISTINCT FROM 'excluded'
    )
    SELECT json_build_object(
        'admitted', (SELECT count(*) FROM participants) + (SELECT participants FROM earlier),
        'places', coalesce((SELECT json_object_agg(condition, places)
                            FROM (SELECT condition, count(*) FILTER (WHERE holds_place) AS places
                                  FROM participants WHERE condition IS NOT NULL GROUP BY condition) AS p), '{}'))
$$;
