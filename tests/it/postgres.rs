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

/// A database of its own on the PostgreSQL server `SESAME_TEST_POSTGRES` names (an admin
/// URL ending in `/DATABASE`), dropped when the test ends, passed or failed.
pub struct Database {
    admin: String,
    name: String,
    pub url: String,
}

impl Database {
    pub async fn create() -> Database {
        let admin = admin_url();
        let name = format!("sesame_it_{}", crate::harness::rand_suffix());
        let (client, connection) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let (server, _) = admin
            .rsplit_once('/')
            .expect("an admin URL ending in /DATABASE");
        Database {
            url: format!("{server}/{name}"),
            admin,
            name,
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        // Drop cannot await: a runtime of its own, on a thread of its own.
        let admin = self.admin.clone();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let (client, connection) =
                    tokio_postgres::connect(&admin, tokio_postgres::NoTls).await?;
                tokio::spawn(connection);
                client.batch_execute(&sql).await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("test database {} was not dropped: {dropped:?}", self.name);
        }
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
