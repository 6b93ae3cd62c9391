"""Telling decisions: the record, the audit line, the announcer and notifications."""
