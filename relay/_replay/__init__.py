"""`lineage-relay replay`: dead letters, files and S3 offloads back into the spool."""
