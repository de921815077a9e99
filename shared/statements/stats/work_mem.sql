-- get_study_stats: memory for stats/figures' hash tables (one entry per visitor of the study:
-- 50,000 take some 10 MB), for this transaction only; with less, PostgreSQL sorts the
-- sessions instead, which takes half as long again at 100,000 sessions. Run before the
-- statement is planned.
SET LOCAL work_mem = '32MB'
