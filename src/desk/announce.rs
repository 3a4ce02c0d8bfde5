//! What each settled change of a request tells the audit trail and the webhooks.

use super::{AccessRequest, Filed, Outcome, RequestState, Workflow};
use crate::notify::{Kind, Notice};

impl Workflow {
    /// The notices a settled change makes: recorded in the trail before the change is
    /// stored; the webhooks get them from the committed trail.
    pub(super) fn notices(
        &self,
        request: &AccessRequest,
        outcome: Outcome,
        filed: Filed,
    ) -> Vec<Notice> {
        let what = format!(
            "{} on {} for {}",
            request.scope.actions_label(),
            request.scope.uri(),
            crate::duration::human(time::Duration::seconds(request.duration_seconds))
        );
        let why = request
            .justification
            .as_deref()
            .map(|j| format!(": {j}"))
            .unwrap_or_default();
        let mut events = Vec::new();
        if filed == Filed::Now {
            events.push((
                Kind::RequestCreated,
                format!("{} asks for {what}{why}", request.requester),
            ));
        }
        match outcome {
            Outcome::Approved => {
                let by: Vec<&str> = request.approvals.iter().map(|a| a.by.as_str()).collect();
                let by = if by.is_empty() {
                    "policy (automatic)".to_owned()
                } else {
                    by.join(", ")
                };
                events.push((
                    Kind::RequestApproved,
                    format!("{} got {what}, approved by {by}", request.requester),
                ));
            }
            Outcome::Denied => {
                let denial = match &request.state {
                    RequestState::Denied { by, reason, .. } => format!("{by}: {reason}"),
                    RequestState::Pending
                    | RequestState::Approved { .. }
                    | RequestState::Withdrawn { .. }
                    | RequestState::TimedOut { .. } => String::new(),
                };
                events.push((
                    Kind::RequestDenied,
                    format!(
                        "{}'s request for {what} was denied by {denial}",
                        request.requester
                    ),
                ));
            }
            Outcome::Withdrawn => {
                let summary = format!("{} withdrew the request for {what}", request.requester);
                events.push((Kind::RequestWithdrawn, summary));
            }
            Outcome::TimedOut => {
                let summary = format!("{}'s request for {what} timed out", request.requester);
                events.push((Kind::RequestTimedOut, summary));
            }
            Outcome::StillPending { .. } | Outcome::Unchanged => {}
        }
        let at = self.clock.now();
        events
            .into_iter()
            .map(|(event, summary)| Notice {
                event,
                at,
                principal: request.requester.clone(),
                scope: request.scope.uri(),
                request_id: Some(request.id.clone()),
                grant_id: request.grant_id.clone(),
                summary,
            })
            .collect()
    }
}
