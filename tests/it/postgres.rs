//! The test PostgreSQL server (started by scripts/test, named by `SESAME_TEST_POSTGRES`):
//! a fresh database for each test that needs one. Unset is a failure, never a skip.

const ENV: &str = "SESAME_TEST_POSTGRES";

/// The admin URL of the test server.
pub fn admin_url() -> String {
    std::env::var(ENV)
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| {
            panic!(
                "{ENV} is not set: these tests run gateways on a real PostgreSQL server. \
             scripts/test starts one; by hand, `source scripts/pg-test-server.sh` (as root) \
             and run cargo test in the same shell"
            )
        })
}

/// A new, empty database on the test server; its URL.
pub async fn fresh_database() -> String {
    let admin = admin_url();
    let (client, connection) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
        .await
        .expect("the test PostgreSQL server answers");
    tokio::spawn(connection);
    let name = format!("sesame_it_{}", crate::harness::rand_suffix());
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("a database for the test");
    match admin.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{name}"),
        None => panic!("{ENV} ({admin}) does not end in /DBNAME"),
    }
}

/// Runs SQL as the admin on the test server (to cut a database off, say).
pub async fn admin(sql: &str) {
    let (client, connection) = tokio_postgres::connect(&admin_url(), tokio_postgres::NoTls)
        .await
        .expect("the test PostgreSQL server answers");
    tokio::spawn(connection);
    client.batch_execute(sql).await.expect(sql);
}
