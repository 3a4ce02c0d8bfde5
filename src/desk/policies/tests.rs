//! One policy set among gateways sharing a store: a load publishes it once, the others take
//! it in, and a set they cannot read leaves theirs in force.

use std::sync::Arc;

use super::*;
use crate::clock::{ManualClock, SharedClock};
use crate::grant::Grants;
use crate::identity::Users;
use crate::policy::PolicySource;
use crate::secret::Key;
use crate::store::SharedStore;
use time::macros::datetime;

fn rule(max: &str) -> PolicySource {
    PolicySource {
        file: "analytics.toml".into(),
        text: format!(
            "[[rule]]\nname = \"analytics\"\ngroups = [\"analysts\"]\nscopes = [\"s3://analytics/\"]\nactions = [\"read\"]\nmax_duration = \"{max}\"\n"
        ),
    }
}

async fn gateway(store: &SharedStore, replica: &str) -> Workflow {
    let clock: SharedClock = Arc::new(ManualClock::new(datetime!(2026-12-01 10:00 UTC)));
    let key = Key::from_bytes([5; 32]);
    let grants = Arc::new(
        Grants::open(store.clone(), clock.clone(), key.clone())
            .await
            .unwrap(),
    );
    let users = Arc::new(Users::open(store.clone(), key).await.unwrap());
    Workflow::open(
        store.clone(),
        grants,
        users,
        PolicySet::default(),
        None,
        clock,
        false,
    )
    .await
    .unwrap()
    .with_replica(replica)
}

/// Every change of the policies table so far, as the feed would bring it.
async fn feed(store: &SharedStore, into: &Workflow) {
    for change in store.changes_since(0, 100).await.unwrap() {
        if change.table == Table::Policies {
            into.apply_policies(&change).unwrap();
        }
    }
}

#[tokio::test]
async fn a_load_is_published_once_and_taken_in_by_the_other_gateways() {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::store::open_file(&dir.path().join("s.redb"))
        .await
        .unwrap();
    let a = gateway(&store, "r-a").await;
    let b = gateway(&store, "r-b").await;

    let first = a.share_policies(Some(vec![rule("8h")])).await.unwrap();
    assert_eq!((first.generation, first.rules), (1, 1));
    // The same files from the second gateway's folder change nothing in force.
    let again = b.share_policies(Some(vec![rule("8h")])).await.unwrap();
    assert_eq!(again.generation, 1);
    assert_eq!(again.loaded_by.as_deref(), Some("r-a"));

    let changed = a.share_policies(Some(vec![rule("1h")])).await.unwrap();
    assert_eq!(changed.generation, 2);
    feed(&store, &b).await;
    let seen = b.policy_status();
    assert_eq!(
        (seen.generation, seen.loaded_by.as_deref()),
        (2, Some("r-a"))
    );
    assert_eq!(
        b.policies().rules[0].max_duration,
        time::Duration::hours(1),
        "B decides by A's reload"
    );

    // A gateway without a folder takes in what the store holds.
    let c = gateway(&store, "r-c").await;
    assert_eq!(c.share_policies(None).await.unwrap().generation, 2);
    assert_eq!(c.policies().rules.len(), 1);
}

#[tokio::test]
async fn a_stored_set_that_does_not_load_here_leaves_the_one_in_force() {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::store::open_file(&dir.path().join("s.redb"))
        .await
        .unwrap();
    let a = gateway(&store, "r-a").await;
    a.share_policies(Some(vec![rule("8h")])).await.unwrap();
    // What a newer build might publish: a field this one does not know.
    let unknown = PolicySource {
        file: "analytics.toml".into(),
        text: format!("{}labels = [\"pii\"]\n", rule("1h").text),
    };
    let stored = InForce {
        generation: 2,
        dir: "/elsewhere".into(),
        sources: vec![unknown],
        loaded_by: "r-newer".into(),
        loaded_at: datetime!(2026-12-01 10:05 UTC),
    };
    let revision = store
        .commit(vec![crate::store::Write::put(
            &stored,
            crate::store::Expect::Anything,
        )])
        .await
        .unwrap();
    a.take_in(revision, &stored);
    let status = a.policy_status();
    assert_eq!(status.generation, 1);
    assert!(
        status.last_error.as_deref().unwrap().contains("r-newer"),
        "{status:?}"
    );
    assert_eq!(a.policies().rules[0].max_duration, time::Duration::hours(8));
}
