"""Coaching cycles (DESIGN §6, issue 15): a teacher's problem of practice followed across
sessions, with action steps, rubric scores and progress."""
