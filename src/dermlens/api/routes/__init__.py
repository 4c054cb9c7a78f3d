"""One router per resource: predict, info (health, model), conditions, triage."""
