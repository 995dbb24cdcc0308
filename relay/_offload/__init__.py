"""Offload: at shutdown, what the drain left in the spool goes to S3 (and comes back with
`lineage-relay replay --s3`)."""
