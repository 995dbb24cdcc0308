"""Test helpers that ship with the project: the mock OpenMetadata server and fakes."""
