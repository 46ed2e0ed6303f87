"""People (DESIGN §6, docs/people.md): who signs in, with which roles, at which school."""
