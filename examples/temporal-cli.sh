#!/usr/bin/env bash
# The worked example with the official `temporal` CLI, as any client without a visitflow
# library would drive the engine. It needs `visits dev` started with same-day plans allowed,
# so the whole story fits in three minutes:
#     VISITFLOW_POLICY__PLAN_LEAD_WORKING_DAYS=0 ./scripts/dev
# `temporal` talks to 127.0.0.1:7233, where `./scripts/dev` listens, unless TEMPORAL_ADDRESS
# names another server. For a `visits dev` on another port, first run
#     export TEMPORAL_ADDRESS=127.0.0.1:17233
# (CI does), and give `visits` the same VISITFLOW_DATA_DIR as that `visits dev`.
# docs/contract.md shows this file verbatim; CI runs it against `visits dev`.
set -euo pipefail
export PATH="$PWD/.venv/bin:$PATH"   # `temporal` and `visits` come with the install
export TEMPORAL_ADDRESS="${TEMPORAL_ADDRESS:-127.0.0.1:7233}"
V="V-$(date +%s)"                    # a fresh visit id on every run
at() { date -u -d "$1" +%Y-%m-%dT%H:%M:%SZ; }   # GNU date; on macOS use gdate
VISIT_AT=$(at '+1 minute')
VISIT_END=$(at '+2 minutes')

# 1. A backend opens the visit: workflow id visit-<visit id>, input = the submit_plan command.
#    A visit id is used once: only an opening that was refused (its run failed) may be sent
#    again with the same id, and a retry while the visit runs must join it, not start
#    another. Hence the contract's two id policies.
temporal workflow start --type VisitWorkflow --task-queue visitflow --workflow-id "visit-$V" \
  --id-reuse-policy AllowDuplicateFailedOnly --id-conflict-policy UseExisting \
  --input '{"command_id": "'"$V"'-plan", "actor": {"id": "r-wang", "role": "rep"},
            "visit_id": "'"$V"'", "rep_id": "r-wang", "manager_id": "m-li",
            "plan": {"customer": {"id": "C-17", "name": "Acme Trading", "tier": "core"},
                     "scheduled_start": "'"$VISIT_AT"'", "duration_minutes": 1,
                     "purpose": "Quarterly review"}}'
# `opened` waits until the plan is committed to the log and returns the command's result.
temporal workflow update execute --workflow-id "visit-$V" --name opened --input '"'"$V"'-plan"'

# 2. The manager approves. A command the rules refuse fails with the rule as its error type
#    and records nothing: here the rep tries to approve their own plan.
temporal workflow update execute --workflow-id "visit-$V" --name approve_plan \
  --input '{"command_id": "'"$V"'-self", "actor": {"id": "r-wang", "role": "rep"}}' \
  || echo "refused, as it should be"
temporal workflow update execute --workflow-id "visit-$V" --name approve_plan \
  --input '{"command_id": "'"$V"'-approve", "actor": {"id": "m-li", "role": "manager"},
            "comment": "Bring the new catalogue"}'

# 3. After the visit, the rep checks in with the recorded start and end.
sleep $(( $(date -d "$VISIT_END" +%s) - $(date +%s) + 1 ))
temporal workflow update execute --workflow-id "visit-$V" --name check_in \
  --input '{"command_id": "'"$V"'-check-in", "actor": {"id": "r-wang", "role": "rep"},
            "execution": {"method": "on_site", "started_at": "'"$VISIT_AT"'",
                          "ended_at": "'"$VISIT_END"'", "location": "Shanghai"}}'

# 4. The rep reports, promising a price list within 30 seconds (a real promise would be days).
PROMISE_DUE=$(at '+30 seconds')
temporal workflow update execute --workflow-id "visit-$V" --name submit_report \
  --input '{"command_id": "'"$V"'-report", "actor": {"id": "r-wang", "role": "rep"},
            "report": {"outcome": "Customer will trial 200 units",
                       "promised_items": [{"item_id": "price-list", "description": "Send the price list",
                                           "owner_id": "r-wang", "due_at": "'"$PROMISE_DUE"'"}]}}'

# 5. The price list is not sent: at its due time the engine escalates it to the manager.
sleep 35
temporal workflow query --workflow-id "visit-$V" --type state -o json | grep -A3 '"escalation_levels"'

# 6. The rep sends it late and the manager accepts the report: the visit closes and its
#    workflow completes with the final state as its result. A query still reads that state;
#    a command now fails with the server's "workflow execution already completed".
temporal workflow update execute --workflow-id "visit-$V" --name complete_item \
  --input '{"command_id": "'"$V"'-sent", "actor": {"id": "r-wang", "role": "rep"},
            "item_id": "price-list", "resolution": "Sent by email"}'
temporal workflow update execute --workflow-id "visit-$V" --name accept_report \
  --input '{"command_id": "'"$V"'-accept", "actor": {"id": "m-li", "role": "manager"}}'
temporal workflow result --workflow-id "visit-$V" >/dev/null   # waits until it has completed
temporal workflow query --workflow-id "visit-$V" --type state -o json | grep '"status": "closed"'
temporal workflow update execute --workflow-id "visit-$V" --name cancel \
  --input '{"command_id": "'"$V"'-cancel", "actor": {"id": "m-li", "role": "manager"},
            "reason": "Too late"}' \
  || echo "not recorded: the visit is closed"
visits show "$V"
