"""What researchers see: the researcher role, study statistics, exports."""
