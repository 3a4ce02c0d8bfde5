//! Work done once among the gateways sharing the store, each piece under a lease there: a
//! revocation's record owed to the trail is moved into one trail, and a request that waited
//! too long is timed out by one gateway.

use time::OffsetDateTime;

use super::{Revocation, Workflow, WorkflowError};
use crate::grant::Revoked;
use crate::model::Principal;
use crate::model::request::{Event, RequestState};
use crate::notify::{Kind, Notice};
use crate::store::{Expect, Lease, OwedRecord, Write};

/// How long a gateway holds a lease on work before another may take it over (the holder
/// died, say); far longer than the work takes.
const LEASE: time::Duration = time::Duration::minutes(1);

impl Workflow {
    /// Revokes a grant (its holder, an approver or the admin decided that) and says so; a
    /// grant that had already ended is left as it was, and nothing is recorded again. A
    /// revocation is never held up by the trail: its record is stored with it and moved into
    /// the trail now, or as soon as the trail can be written.
    pub async fn revoke(
        &self,
        who: &Principal,
        grant_id: &str,
    ) -> Result<Revocation, WorkflowError> {
        let at = self.clock.now();
        let notice = |grant: &crate::model::Grant| Notice {
            event: Kind::GrantRevoked,
            at,
            principal: grant.principal.clone(),
            scope: grant.scope.uri(),
            request_id: None,
            grant_id: Some(grant.id.clone()),
            summary: format!(
                "{} revoked grant {} of {} on {}",
                who.name,
                grant.id,
                grant.principal,
                grant.scope.uri()
            ),
        };
        let revoked = self
            .grants
            .revoke_owing(grant_id, &who.name, |grant| OwedRecord {
                id: owed_id(at, &grant.id),
                body: crate::notify::record_of(&notice(grant)).into(),
            })
            .await?;
        // The webhooks hear of it once its record is in the trail.
        let record_owed = match &revoked {
            Revoked::Now(_) => self.flush_owed_records().await.err(),
            Revoked::Already(_) => None,
        };
        Ok(Revocation {
            revoked,
            record_owed,
        })
    }

    /// Moves the records owed to the trail (revocations made while it could not be written,
    /// or just before a crash) into it, oldest first, and then forgets them; how many.
    pub async fn flush_owed_records(&self) -> Result<usize, WorkflowError> {
        let _flushing = self.flushing.lock().await;
        let mut owed = Vec::new();
        for (_, record) in crate::store::load::<OwedRecord>(&*self.store).await? {
            // Another gateway may be moving the same record into its own trail.
            if self.lease(&format!("owed/{}", record.id)).await? {
                owed.push(record);
            }
        }
        owed.sort_by(|a, b| a.id.cmp(&b.id));
        if owed.is_empty() {
            return Ok(0);
        }
        self.notifier
            .record_all_durably(&owed.iter().map(|o| o.body.clone()).collect::<Vec<_>>())
            .map_err(|e| WorkflowError::Unrecorded(e.to_string()))?;
        let settled: Vec<Write> = owed
            .iter()
            .flat_map(|o| {
                [
                    Write::delete::<OwedRecord>(&o.id, Expect::Anything),
                    Write::delete::<Lease>(&format!("owed/{}", o.id), Expect::Anything),
                ]
            })
            .collect();
        self.store.commit(settled).await?;
        Ok(owed.len())
    }

    /// Times out every pending request past its deadline; returns how many timed out (one
    /// decided meanwhile is not counted).
    pub async fn tick(&self) -> Result<usize, WorkflowError> {
        let due: Vec<String> = self
            .requests
            .values()
            .into_iter()
            .filter(|r| r.state == RequestState::Pending && r.pending_until <= self.clock.now())
            .map(|r| r.id)
            .collect();
        let mut timed_out = 0;
        for id in &due {
            // Of the gateways sharing the store, the one holding the lease times it out.
            let work = format!("timeout/{id}");
            if !self.lease(&work).await? {
                continue;
            }
            let request = self.decide(id, &Event::Tick).await?;
            if matches!(request.state, RequestState::TimedOut { .. }) {
                timed_out += 1;
            }
            self.store
                .commit(vec![Write::delete::<Lease>(&work, Expect::Anything)])
                .await?;
        }
        Ok(timed_out)
    }

    /// Takes the lease on work done once among the gateways, for long enough to do it.
    async fn lease(&self, work: &str) -> Result<bool, WorkflowError> {
        let now = self.clock.now();
        let until = now + LEASE;
        Ok(crate::store::claim(&*self.store, work, &self.holder, now, until).await?)
    }
}

/// Owed records sort by when they were made.
fn owed_id(at: OffsetDateTime, of: &str) -> String {
    format!("{:024}-{of}", at.unix_timestamp_nanos())
}
