//! Access requests and their one state machine. `apply` is pure: given a request, an event
//! and the time, it returns the next request and what happened, or why the event is refused
//! (leaving the request as it was). Every match is exhaustive, so a new state or event cannot
//! be forgotten.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::Scope;

/// What the policy asked of a request when it was filed; kept with the request so a later
/// policy change does not move the goalposts of requests already pending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Needs {
    pub rule: String,
    pub approvals: u32,
    pub approver_groups: Vec<String>,
    pub approver_mfa: bool,
    /// Limits the grant will carry, from the rule.
    #[serde(default)]
    pub limits: super::Limits,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub mfa: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum RequestState {
    Pending,
    Approved {
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    Denied {
        by: String,
        reason: String,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    Withdrawn {
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    TimedOut {
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
}

impl RequestState {
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            RequestState::Pending => "pending",
            RequestState::Approved { .. } => "approved",
            RequestState::Denied { .. } => "denied",
            RequestState::Withdrawn { .. } => "withdrawn",
            RequestState::TimedOut { .. } => "timed_out",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRequest {
    pub id: String,
    pub requester: String,
    pub scope: Scope,
    pub duration_seconds: i64,
    #[serde(with = "time::serde::rfc3339::option")]
    pub starts_at: Option<OffsetDateTime>,
    pub justification: Option<String>,
    pub needs: Needs,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// A request still pending at this time times out.
    #[serde(with = "time::serde::rfc3339")]
    pub pending_until: OffsetDateTime,
    pub approvals: Vec<Approval>,
    pub state: RequestState,
    /// The grant this request extends, for extensions.
    pub extends: Option<String>,
    /// The grant created when it was approved.
    pub grant_id: Option<String>,
}

/// Someone acting on a request, as identity established them.
#[derive(Debug, Clone)]
pub struct Actor<'a> {
    pub user: &'a str,
    pub groups: &'a [String],
    /// A fresh MFA code was verified for this action.
    pub mfa: bool,
}

#[derive(Debug, Clone)]
pub enum Event<'a> {
    Approve(Actor<'a>),
    Deny {
        by: Actor<'a>,
        reason: String,
    },
    Withdraw(Actor<'a>),
    /// Time passed; a pending request past `pending_until` times out.
    Tick,
}

/// What an accepted event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// An approval was recorded; more are needed.
    StillPending {
        approvals_left: u32,
    },
    /// Enough approvals: the caller now creates the grant.
    Approved,
    Denied,
    Withdrawn,
    TimedOut,
    /// A tick before the deadline: nothing changed.
    Unchanged,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("request {id} is already {state}")]
    NotPending { id: String, state: &'static str },
    #[error("{user} filed request {id} and cannot approve or deny it")]
    OwnRequest { id: String, user: String },
    #[error("{user} already approved request {id}")]
    AlreadyApproved { id: String, user: String },
    #[error("{user} is not in an approver group of request {id} ({groups})")]
    NotAnApprover {
        id: String,
        user: String,
        groups: String,
    },
    #[error("approving request {id} needs a fresh MFA code (--totp)")]
    MfaRequired { id: String },
    #[error("only {requester}, who filed request {id}, can withdraw it")]
    NotRequester { id: String, requester: String },
    #[error("request {id} timed out at {at}")]
    Expired { id: String, at: String },
}

/// Applies one event. On error the request is unchanged (the caller keeps its copy).
pub fn apply(
    request: &AccessRequest,
    event: &Event<'_>,
    now: OffsetDateTime,
) -> Result<(AccessRequest, Outcome), RequestError> {
    let id = request.id.clone();
    match &request.state {
        RequestState::Pending => {}
        state @ (RequestState::Approved { .. }
        | RequestState::Denied { .. }
        | RequestState::Withdrawn { .. }
        | RequestState::TimedOut { .. }) => {
            return match event {
                // Ticks on settled requests are harmless.
                Event::Tick => Ok((request.clone(), Outcome::Unchanged)),
                Event::Approve(_) | Event::Deny { .. } | Event::Withdraw(_) => {
                    Err(RequestError::NotPending {
                        id,
                        state: state.name(),
                    })
                }
            };
        }
    }
    let timed_out = now >= request.pending_until;
    let mut next = request.clone();
    match event {
        Event::Tick if timed_out => {
            next.state = RequestState::TimedOut { at: now };
            Ok((next, Outcome::TimedOut))
        }
        Event::Tick => Ok((next, Outcome::Unchanged)),
        Event::Approve(_) | Event::Deny { .. } | Event::Withdraw(_) if timed_out => {
            Err(RequestError::Expired {
                id,
                at: crate::duration::rfc3339(request.pending_until),
            })
        }
        Event::Approve(actor) => {
            check_approver(request, actor)?;
            if request.approvals.iter().any(|a| a.by == actor.user) {
                return Err(RequestError::AlreadyApproved {
                    id,
                    user: actor.user.to_owned(),
                });
            }
            if request.needs.approver_mfa && !actor.mfa {
                return Err(RequestError::MfaRequired { id });
            }
            next.approvals.push(Approval {
                by: actor.user.to_owned(),
                at: now,
                mfa: actor.mfa,
            });
            let have = u32::try_from(next.approvals.len()).unwrap_or(u32::MAX);
            if have >= request.needs.approvals {
                next.state = RequestState::Approved { at: now };
                Ok((next, Outcome::Approved))
            } else {
                Ok((
                    next,
                    Outcome::StillPending {
                        approvals_left: request.needs.approvals - have,
                    },
                ))
            }
        }
        Event::Deny { by, reason } => {
            check_approver(request, by)?;
            next.state = RequestState::Denied {
                by: by.user.to_owned(),
                reason: reason.clone(),
                at: now,
            };
            Ok((next, Outcome::Denied))
        }
        Event::Withdraw(actor) => {
            if actor.user != request.requester {
                return Err(RequestError::NotRequester {
                    id,
                    requester: request.requester.clone(),
                });
            }
            next.state = RequestState::Withdrawn { at: now };
            Ok((next, Outcome::Withdrawn))
        }
    }
}

/// Approvers are never the requester and always in one of the groups the rule names.
fn check_approver(request: &AccessRequest, actor: &Actor<'_>) -> Result<(), RequestError> {
    let id = request.id.clone();
    if actor.user == request.requester {
        return Err(RequestError::OwnRequest {
            id,
            user: actor.user.to_owned(),
        });
    }
    if !actor
        .groups
        .iter()
        .any(|g| request.needs.approver_groups.contains(g))
    {
        return Err(RequestError::NotAnApprover {
            id,
            user: actor.user.to_owned(),
            groups: request.needs.approver_groups.join(", "),
        });
    }
    Ok(())
}

/// A request that needs no approval is approved the moment it is filed.
#[must_use]
pub fn file(mut request: AccessRequest, now: OffsetDateTime) -> (AccessRequest, Outcome) {
    let needed = request.needs.approvals;
    if needed == 0 {
        request.state = RequestState::Approved { at: now };
        (request, Outcome::Approved)
    } else {
        request.state = RequestState::Pending;
        (
            request,
            Outcome::StillPending {
                approvals_left: needed,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Action;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-11-29 10:00 UTC);

    fn payroll_request() -> AccessRequest {
        AccessRequest {
            id: "r-1".into(),
            requester: "alice".into(),
            scope: Scope::parse("s3://hr-data/payroll/", vec![Action::Read, Action::List]).unwrap(),
            duration_seconds: 7200,
            starts_at: None,
            justification: Some("INC-4411".into()),
            needs: Needs {
                rule: "payroll".into(),
                approvals: 2,
                approver_groups: vec!["hr-approvers".into()],
                approver_mfa: true,
                limits: crate::model::Limits::default(),
            },
            created_at: T0,
            pending_until: T0 + time::Duration::hours(24),
            approvals: Vec::new(),
            state: RequestState::Pending,
            extends: None,
            grant_id: None,
        }
    }

    fn hr(user: &'static str, mfa: bool) -> Actor<'static> {
        static GROUPS: std::sync::LazyLock<Vec<String>> =
            std::sync::LazyLock::new(|| vec!["hr-approvers".to_owned()]);
        Actor {
            user,
            groups: &GROUPS,
            mfa,
        }
    }

    fn at(minutes: i64) -> OffsetDateTime {
        T0 + time::Duration::minutes(minutes)
    }

    #[test]
    fn two_approvals_with_mfa_approve_the_payroll_request() {
        let r = payroll_request();
        // bob approves with MFA: one approval recorded, one to go
        let (r, outcome) = apply(&r, &Event::Approve(hr("bob", true)), at(1)).unwrap();
        assert_eq!(outcome, Outcome::StillPending { approvals_left: 1 });
        // bob again: one approver counts once
        let err = apply(&r, &Event::Approve(hr("bob", true)), at(2)).unwrap_err();
        assert_eq!(err.to_string(), "bob already approved request r-1");
        // carol without MFA: refused, nothing recorded
        let err = apply(&r, &Event::Approve(hr("carol", false)), at(3)).unwrap_err();
        assert_eq!(err, RequestError::MfaRequired { id: "r-1".into() });
        // carol with MFA: approved
        let (r, outcome) = apply(&r, &Event::Approve(hr("carol", true)), at(4)).unwrap();
        assert_eq!(outcome, Outcome::Approved);
        assert_eq!(r.state, RequestState::Approved { at: at(4) });
        assert_eq!(
            r.approvals
                .iter()
                .map(|a| a.by.as_str())
                .collect::<Vec<_>>(),
            ["bob", "carol"]
        );
        // a settled request takes no more decisions
        let err = apply(
            &r,
            &Event::Withdraw(Actor {
                user: "alice",
                groups: &[],
                mfa: false,
            }),
            at(5),
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "request r-1 is already approved");
    }

    #[test]
    fn requesters_and_outsiders_cannot_approve() {
        let r = payroll_request();
        // alice is in hr-approvers too, but filed the request
        let alice = Actor {
            user: "alice",
            groups: hr("x", true).groups,
            mfa: true,
        };
        assert!(matches!(
            apply(&r, &Event::Approve(alice), at(1)),
            Err(RequestError::OwnRequest { .. })
        ));
        // dave is not an approver
        let groups = vec!["data-eng".to_owned()];
        let dave = Actor {
            user: "dave",
            groups: &groups,
            mfa: true,
        };
        let err = apply(&r, &Event::Approve(dave.clone()), at(1)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "dave is not in an approver group of request r-1 (hr-approvers)"
        );
        // nor can dave deny it
        let deny = Event::Deny {
            by: dave,
            reason: "no".into(),
        };
        assert!(matches!(
            apply(&r, &deny, at(1)),
            Err(RequestError::NotAnApprover { .. })
        ));
    }

    #[test]
    fn one_denial_by_an_approver_ends_the_request() {
        let (r, _) = apply(&payroll_request(), &Event::Approve(hr("bob", true)), at(1)).unwrap();
        let (r, outcome) = apply(
            &r,
            &Event::Deny {
                by: hr("carol", false),
                reason: "not an incident".into(),
            },
            at(2),
        )
        .unwrap();
        assert_eq!(outcome, Outcome::Denied);
        assert_eq!(r.state.name(), "denied");
        assert!(apply(&r, &Event::Approve(hr("erin", true)), at(3)).is_err());
    }

    #[test]
    fn only_the_requester_withdraws() {
        let r = payroll_request();
        let err = apply(&r, &Event::Withdraw(hr("bob", true)), at(1)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "only alice, who filed request r-1, can withdraw it"
        );
        let (r, outcome) = apply(
            &r,
            &Event::Withdraw(Actor {
                user: "alice",
                groups: &[],
                mfa: false,
            }),
            at(1),
        )
        .unwrap();
        assert_eq!((outcome, r.state.name()), (Outcome::Withdrawn, "withdrawn"));
    }

    #[test]
    fn pending_requests_time_out_and_refuse_late_decisions() {
        let r = payroll_request();
        // a tick before the deadline changes nothing
        let (r, outcome) = apply(&r, &Event::Tick, at(60)).unwrap();
        assert_eq!(outcome, Outcome::Unchanged);
        // an approval after the deadline is refused even before any tick ran
        let late = at(24 * 60);
        assert!(matches!(
            apply(&r, &Event::Approve(hr("bob", true)), late),
            Err(RequestError::Expired { .. })
        ));
        // the tick at the deadline times it out; later ticks change nothing
        let (r, outcome) = apply(&r, &Event::Tick, late).unwrap();
        assert_eq!((outcome, r.state.name()), (Outcome::TimedOut, "timed_out"));
        assert_eq!(
            apply(&r, &Event::Tick, late + time::Duration::hours(1))
                .unwrap()
                .1,
            Outcome::Unchanged
        );
    }

    #[test]
    fn requests_needing_no_approval_are_approved_when_filed() {
        let mut r = payroll_request();
        r.needs.approvals = 0;
        let (r, outcome) = file(r, T0);
        assert_eq!(
            (outcome, r.state),
            (Outcome::Approved, RequestState::Approved { at: T0 })
        );
        let (r, outcome) = file(payroll_request(), T0);
        assert_eq!(
            (outcome, r.state),
            (
                Outcome::StillPending { approvals_left: 2 },
                RequestState::Pending
            )
        );
    }
}
