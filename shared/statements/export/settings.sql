-- export_data: the export's filter (read by exported_sessions(), sql/004_research.sql)
-- and its statement timeout, for this transaction only (is_local). An export streams
-- for as long as its client takes to read it, far beyond the functions' usual
-- statement timeout.
SELECT set_config('visitors.export_filter', :filter, true),
       set_config('statement_timeout', :statement_timeout, true)
