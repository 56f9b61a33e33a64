"""The business of a customer visit, pure: models, commands, events, rules and deadlines.

No I/O and no Temporal here: the workflow, the auditor's replay and the tests share these
functions (`decide`, `evolve`, `next_alarm`).
"""
